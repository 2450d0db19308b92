"""The one seam to bytes. Nothing else imports boto3 or touches paths under var/.

Two backends with the same verbs: start an upload, give an upload URL for part N, reconcile
received parts, complete, abort, open a read stream, delete, give a download URL.

- FilesystemStorage keeps each object as one file. A part whose offset is known when it is
  declared (every lower part declared) is written straight into the object being assembled, so
  completing the upload moves no bytes; any other part waits in a file of its own and is copied
  into place (kernel-side) at completion.
- S3Storage uses real S3 multipart uploads through django-storages' boto3 client: presigned
  UploadPart URLs carry the part's SHA-256 as a signed header, so the store refuses other bytes.
"""

import base64
import errno
import fcntl
import hashlib
import io
import math
import os
import shutil
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.urls import reverse

from binaries.models import Binary, BinaryPart, PartState

CHUNK = 1 << 20  # request bodies are read 1 MiB at a time
READ_BUFFER = 4 << 20  # reads for hashing and downloads


class StorageError(Exception):
    """The object store failed or refused; the message says what to do."""


class PartBusy(StorageError):
    pass


class ContentMissing(StorageError):
    """The object is not in the store (not uploaded, or deleted)."""


@dataclass(frozen=True)
class PartCheck:
    """What the store says of one uploaded part."""

    state: str
    message: str = ""


def object_key(binary: Binary) -> str:
    return f"binaries/{binary.organization.uuid}/{binary.uuid}"


def content_disposition(binary: Binary) -> str:
    version = binary.artifact_version
    name = f"{version.artifact.name}-{version.version}-{binary.target}.bin"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(name)}"


class Backend(Protocol):
    name: str

    def start_upload(self, binary: Binary) -> None: ...
    def part_upload_url(
        self, binary: Binary, part: BinaryPart, expires_at: datetime, base_url: str
    ) -> str: ...
    def check_parts(self, binary: Binary, parts: list[BinaryPart]) -> dict[int, PartCheck]: ...
    def complete(self, binary: Binary, parts: list[BinaryPart]) -> None: ...
    def abort(self, binary: Binary) -> None: ...
    def open(self, binary: Binary) -> BinaryIO: ...
    def delete(self, binary: Binary) -> None: ...
    def exists(self, binary: Binary) -> bool: ...
    def listing(self) -> list[str]: ...


# --- URL tokens for the filesystem backend -----------------------------------------------

PART_SALT = "peridio.binary-part-upload"


def sign_part_token(binary: Binary, part: BinaryPart, expires_at: datetime) -> str:
    payload = {
        "b": binary.uuid.hex,
        "i": part.index,
        "s": part.size,
        "h": part.hash,
        "t": part.token,
        "e": int(expires_at.timestamp()),
    }
    return signing.Signer(salt=PART_SALT).sign_object(payload, compress=True)


def read_part_token(token: str) -> dict[str, Any]:
    """The token's payload; raises signing.BadSignature when it was tampered with."""
    return signing.Signer(salt=PART_SALT).unsign_object(token)


DOWNLOAD_SALT = "peridio.binary-download"


def sign_download_token(binary: Binary, expires_at: datetime) -> str:
    payload = {"b": binary.uuid.hex, "h": binary.verified_hash, "e": int(expires_at.timestamp())}
    return signing.Signer(salt=DOWNLOAD_SALT).sign_object(payload)


def read_download_token(token: str) -> dict[str, Any]:
    return signing.Signer(salt=DOWNLOAD_SALT).unsign_object(token)


# --- Filesystem ---------------------------------------------------------------------------


class FilesystemStorage:
    name = "filesystem"

    def __init__(self, root: Path):
        self.root = Path(root)

    def _base(self, binary: Binary) -> Path:
        return self.root / str(binary.organization.uuid) / str(binary.uuid)

    def object_path(self, binary: Binary) -> Path:
        return self._base(binary).with_suffix(".bin")

    def _partial(self, binary: Binary) -> Path:
        return self._base(binary).with_suffix(".partial")

    def _parts_dir(self, binary: Binary) -> Path:
        return self._base(binary).with_suffix(".parts")

    def start_upload(self, binary: Binary) -> None:
        self._base(binary).parent.mkdir(parents=True, exist_ok=True)

    def part_upload_url(
        self, binary: Binary, part: BinaryPart, expires_at: datetime, base_url: str
    ) -> str:
        token = sign_part_token(binary, part, expires_at)
        return base_url.rstrip("/") + reverse("part_upload", args=[token])

    def receive_part(
        self,
        binary: Binary,
        part: BinaryPart,
        stream: IO[bytes],
        length: int,
        still_current: Callable[[], bool] | None = None,
    ) -> PartCheck:
        """Stream a part's bytes to disk while hashing them; never hold the part in memory.

        Written in place in the object being assembled when the part's offset is known,
        else to a file of its own. A range lock makes a second upload of the same part wait
        its turn rather than interleave.
        """
        self.start_upload(binary)
        in_place = part.offset is not None
        if in_place:
            path, start = self._partial(binary), int(part.offset or 0)
        else:
            self._parts_dir(binary).mkdir(exist_ok=True)
            path, start = self._parts_dir(binary) / f"{part.index}.{part.token}", 0
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            try:
                _lock_range(fd, start, max(part.size, 1))
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    raise PartBusy(
                        f"Part {part.index} is being uploaded by another request; "
                        "wait for it to finish or retry later."
                    ) from None
                raise
            if still_current is not None and not still_current():
                # Declared again while this request waited: its bytes must not land on the
                # new declaration's (already written in place, perhaps).
                return PartCheck(PartState.UPLOADABLE, "superseded")
            digest = hashlib.sha256()
            received = 0
            position = start
            while received < length:
                chunk = stream.read(min(CHUNK, length - received))
                if not chunk:
                    break
                digest.update(chunk)
                # Never write past the part's own range: a longer body cannot damage a neighbour.
                writable = max(0, min(len(chunk), part.size - received))
                if writable:
                    os.pwrite(fd, chunk[:writable] if writable < len(chunk) else chunk, position)
                    position += writable
                received += len(chunk)
            if received == part.size and digest.hexdigest() == part.hash:
                os.fsync(fd)
            if not in_place and received != part.size:
                os.ftruncate(fd, min(received, part.size))
        finally:
            os.close(fd)
        if still_current is not None and not still_current():
            return PartCheck(PartState.UPLOADABLE, "superseded")
        if received != part.size:
            return PartCheck(
                PartState.INVALID_SIZE,
                f"Part {part.index} was declared as {part.size} bytes but {received} arrived.",
            )
        found = digest.hexdigest()
        if found != part.hash:
            return PartCheck(
                PartState.INVALID_HASH,
                f"Part {part.index} was declared as sha256:{part.hash} but the bytes that "
                f"arrived are sha256:{found}.",
            )
        return PartCheck(PartState.VALID)

    def check_parts(self, binary: Binary, parts: list[BinaryPart]) -> dict[int, PartCheck]:
        # The upload endpoint already checked size and SHA-256 of each part as it arrived;
        # a part whose bytes have since gone missing is uploadable again.
        checks: dict[int, PartCheck] = {}
        try:
            partial_size = self._partial(binary).stat().st_size
        except FileNotFoundError:  # none yet, or a reset just removed it
            partial_size = 0
        expected_offset = 0
        for part in sorted(parts, key=lambda p: p.index):
            placed_at, expected_offset = expected_offset, expected_offset + part.size
            if part.state != PartState.VALID:
                continue
            if part.offset is not None:
                # Written in place: it must still sit where the declared sizes put it.
                present = part.offset == placed_at and partial_size >= part.offset + part.size
            else:
                present = (self._parts_dir(binary) / f"{part.index}.{part.token}").exists()
            if not present:
                checks[part.index] = PartCheck(
                    PartState.UPLOADABLE, f"Part {part.index}'s bytes are missing; upload it again."
                )
        return checks

    def complete(self, binary: Binary, parts: list[BinaryPart]) -> None:
        """Assemble the object: parts already in place stay; the others are copied in.

        Serialized per binary, and a second call after success does nothing, so two clients
        marking the same binary hashable cannot damage the object.
        """
        self.start_upload(binary)
        # Lock the organization's directory: no lock file is left behind, and completion is
        # quick, so serializing it within one organization costs nothing.
        lock = os.open(self._base(binary).parent, os.O_RDONLY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._assemble(binary, parts)
        except FileNotFoundError as exc:
            # A reset deleted the parts while they were being put together.
            raise PartBusy(
                "The upload was reset while it was being completed; upload its parts again, "
                "then mark it hashable."
            ) from exc
        finally:
            os.close(lock)

    def _assemble(self, binary: Binary, parts: list[BinaryPart]) -> None:
        partial = self._partial(binary)
        if self.object_path(binary).exists() and not partial.exists():
            return  # completed by a concurrent request
        fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            offset = 0
            for part in sorted(parts, key=lambda p: p.index):
                if part.offset != offset:
                    source = self._parts_dir(binary) / f"{part.index}.{part.token}"
                    with open(source, "rb") as src:
                        _copy_range(src.fileno(), fd, part.size, offset)
                offset += part.size
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, self.object_path(binary))
        shutil.rmtree(self._parts_dir(binary), ignore_errors=True)

    def abort(self, binary: Binary) -> None:
        self._partial(binary).unlink(missing_ok=True)
        shutil.rmtree(self._parts_dir(binary), ignore_errors=True)

    def open(self, binary: Binary) -> BinaryIO:
        try:
            return open(self.object_path(binary), "rb", buffering=0)
        except FileNotFoundError:
            raise ContentMissing(f"the content of {binary.prn} is not in storage") from None
        except OSError as exc:
            raise StorageError(f"The content of {binary.prn} could not be read ({exc}).") from exc

    def delete(self, binary: Binary) -> None:
        self.abort(binary)
        self.object_path(binary).unlink(missing_ok=True)

    def exists(self, binary: Binary) -> bool:
        return self.object_path(binary).exists()

    def download_url(self, binary: Binary, expires_at: datetime, base_url: str) -> str:
        token = sign_download_token(binary, expires_at)
        return base_url.rstrip("/") + reverse("binary_download", args=[token])

    def size(self, binary: Binary) -> int:
        return self.object_path(binary).stat().st_size

    def listing(self) -> list[str]:
        """Every file the backend holds (tests and the janitor prove nothing is left behind)."""
        if not self.root.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())


def _lock_range(fd: int, start: int, length: int) -> None:
    """Lock [start, start + length) of fd's file for writing, or raise OSError (EAGAIN/EACCES).

    On Linux an open file description lock: it belongs to this open file, so two threads of one
    process (gthread workers) exclude each other, and closing another descriptor of the file
    does not drop it. POSIX record locks (lockf) do neither; they remain the fallback elsewhere.
    """
    ofd_setlk = getattr(fcntl, "F_OFD_SETLK", None)
    if ofd_setlk is None:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
        return
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padding.
    fcntl.fcntl(fd, ofd_setlk, struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0))


def _copy_range(src_fd: int, dst_fd: int, count: int, dst_offset: int) -> None:
    src_offset = 0
    while count > 0:
        try:
            n = os.copy_file_range(src_fd, dst_fd, count, src_offset, dst_offset)
        except OSError:
            n = 0
        if n <= 0:  # not supported here: fall back to a buffered copy
            data = os.pread(src_fd, min(count, READ_BUFFER), src_offset)
            if not data:
                raise StorageError("A part file is shorter than its declared size.")
            n = os.pwrite(dst_fd, data, dst_offset)
        src_offset += n
        dst_offset += n
        count -= n


# --- S3 -----------------------------------------------------------------------------------


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class S3Storage:
    name = "s3"

    def __init__(self, backend: Any):
        from botocore.config import Config

        self.backend = backend  # django-storages' S3Storage, configured by STORAGES["binaries"]
        # A store that stops answering mid-read must fail in seconds (and be retried), not
        # hang a worker for botocore's default minute. The client is built lazily, after this.
        self.backend.client_config = self.backend.client_config.merge(
            Config(connect_timeout=5, read_timeout=15)
        )

    @property
    def client(self) -> Any:
        return self.backend.connection.meta.client

    @property
    def bucket(self) -> str:
        return self.backend.bucket_name

    def key(self, binary: Binary) -> str:
        prefix = (self.backend.location or "").strip("/")
        return f"{prefix}/{object_key(binary)}" if prefix else object_key(binary)

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise StorageError(f"The object store refused to {what} ({code}).") from exc
        except BotoCoreError as exc:
            raise StorageError(f"The object store could not {what}: {exc}. Try again.") from exc

    def start_upload(self, binary: Binary) -> None:
        """Create the multipart upload once; a racing second one is aborted."""
        if binary.upload_id:
            return
        created = self._call(
            "start the upload",
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=self.key(binary),
            ChecksumAlgorithm="SHA256",
            ContentType="application/octet-stream",
        )
        upload_id = created["UploadId"]
        won = Binary.objects.filter(pk=binary.pk, upload_id__isnull=True).update(
            upload_id=upload_id
        )
        if not won:
            self._abort_id(binary, upload_id)
        binary.refresh_from_db(fields=["upload_id"])

    def part_upload_url(
        self, binary: Binary, part: BinaryPart, expires_at: datetime, base_url: str
    ) -> str:
        from django.utils import timezone

        expires_in = max(1, math.ceil((expires_at - timezone.now()).total_seconds()))
        return self._call(
            "sign an upload URL",
            self.client.generate_presigned_url,
            ClientMethod="upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": self.key(binary),
                "UploadId": binary.upload_id,
                "PartNumber": part.index,
                "ContentLength": part.size,
                "ChecksumSHA256": _b64(part.hash),
            },
            ExpiresIn=expires_in,
        )

    def _listed_parts(self, binary: Binary) -> dict[int, dict[str, Any]]:
        if not binary.upload_id:
            return {}
        found: dict[int, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key(binary),
            "UploadId": binary.upload_id,
        }
        while True:
            page = self._call("list the uploaded parts", self.client.list_parts, **kwargs)
            for item in page.get("Parts", []):
                found[item["PartNumber"]] = item
            if not page.get("IsTruncated"):
                return found
            kwargs["PartNumberMarker"] = page["NextPartNumberMarker"]

    def check_parts(self, binary: Binary, parts: list[BinaryPart]) -> dict[int, PartCheck]:
        listed = self._listed_parts(binary)
        checks: dict[int, PartCheck] = {}
        for part in parts:
            item = listed.get(part.index)
            if item is None:
                checks[part.index] = PartCheck(PartState.UPLOADABLE)
            elif item["Size"] != part.size:
                checks[part.index] = PartCheck(
                    PartState.INVALID_SIZE,
                    f"Part {part.index} was declared as {part.size} bytes but the store holds "
                    f"{item['Size']}.",
                )
            elif item.get("ChecksumSHA256") and item["ChecksumSHA256"] != _b64(part.hash):
                checks[part.index] = PartCheck(
                    PartState.INVALID_HASH,
                    f"Part {part.index} was declared as sha256:{part.hash} but the store holds "
                    f"sha256:{base64.b64decode(item['ChecksumSHA256']).hex()}.",
                )
            else:
                checks[part.index] = PartCheck(PartState.VALID)
        return checks

    def complete(self, binary: Binary, parts: list[BinaryPart]) -> None:
        if not parts:
            self.abort(binary)
            self._call(
                "store the empty object",
                self.client.put_object,
                Bucket=self.bucket,
                Key=self.key(binary),
                Body=b"",
            )
            return
        listed = self._listed_parts(binary)
        self._call(
            "complete the upload",
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=self.key(binary),
            UploadId=binary.upload_id,
            MultipartUpload={
                "Parts": [
                    {
                        "PartNumber": p.index,
                        "ETag": listed[p.index]["ETag"],
                        "ChecksumSHA256": _b64(p.hash),
                    }
                    for p in sorted(parts, key=lambda p: p.index)
                ]
            },
        )

    def _abort_id(self, binary: Binary, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key(binary), UploadId=upload_id
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                raise StorageError("The object store refused to abort the upload.") from exc

    def abort(self, binary: Binary) -> None:
        if binary.upload_id:
            self._abort_id(binary, binary.upload_id)

    def open(self, binary: Binary) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            response = self._call(
                "read the content",
                self.client.get_object,
                Bucket=self.bucket,
                Key=self.key(binary),
            )
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in (
                "NoSuchKey",
                "404",
            ):
                raise ContentMissing(f"the content of {binary.prn} is not in storage") from None
            raise
        return _StreamReader(response["Body"])  # type: ignore[return-value]

    def delete(self, binary: Binary) -> None:
        self.abort(binary)
        self._call(
            "delete the content",
            self.client.delete_object,
            Bucket=self.bucket,
            Key=self.key(binary),
        )

    def download_url(self, binary: Binary, expires_at: datetime, base_url: str) -> str:
        """A presigned GET, or a CloudFront-signed URL when django-storages has the keys."""
        from django.utils import timezone

        expires_in = max(1, math.ceil((expires_at - timezone.now()).total_seconds()))
        if getattr(self.backend, "cloudfront_signer", None) and self.backend.custom_domain:
            return self.backend.url(object_key(binary), expire=expires_in)
        return self._call(
            "sign a download URL",
            self.client.generate_presigned_url,
            ClientMethod="get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key(binary),
                "ResponseContentDisposition": content_disposition(binary),
            },
            ExpiresIn=expires_in,
        )

    def exists(self, binary: Binary) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(binary))
        except ClientError:
            return False
        return True

    def listing(self) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        keys.extend(f"(multipart upload) {u['Key']}" for u in uploads)
        return sorted(keys)

    def multipart_uploads(self) -> list[tuple[str, str]]:
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [(u["Key"], u["UploadId"]) for u in uploads]


class _StreamReader(io.RawIOBase):
    """readinto() over botocore's StreamingBody, so readers can reuse one buffer."""

    def __init__(self, body: Any):
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        from botocore.exceptions import BotoCoreError

        try:
            data = self.body.read(len(buffer))
        except BotoCoreError as exc:
            raise StorageError(
                f"The object store stopped sending the content ({exc}); try again."
            ) from exc
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        self.body.close()
        super().close()


def read_chunks(stream: Any, size: int = READ_BUFFER) -> Iterable[memoryview]:
    """Yield views of one reused buffer; the caller must use each before the next."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    while True:
        n = stream.readinto(view)
        if not n:
            return
        yield view[:n]


# --- Selection ----------------------------------------------------------------------------

_chosen: dict[str, Any] = {}


def get() -> Any:
    """The configured backend (FilesystemStorage or S3Storage), built once per configuration."""
    from django.core.files.storage import storages

    config = repr((settings.STORAGE_BACKEND, settings.STORAGES["binaries"], settings.BINARIES_ROOT))
    if config not in _chosen:
        _chosen.clear()
        if settings.STORAGE_BACKEND == "s3":
            options: Any = settings.STORAGES["binaries"]
            _chosen[config] = S3Storage(storages.create_storage(options))
        else:
            _chosen[config] = FilesystemStorage(Path(settings.BINARIES_ROOT))
    return _chosen[config]
