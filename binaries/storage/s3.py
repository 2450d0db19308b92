"""The S3 backend: real multipart uploads through django-storages' boto3 client. Presigned
UploadPart URLs carry the part's SHA-256 as a signed header, so the store refuses other bytes.

Every call may be acted on by the store and its answer lost (a time-out, a dropped
connection); botocore then sends it again. Completing looks at what the store holds when the
answer is not a success, so a lost answer never strands a binary; aborting an upload the store
no longer has is done; a second upload made by a retried create is an orphan the janitor
removes (janitor.remove_orphans).
"""

import base64
import copy
import io
import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, BinaryIO
from uuid import UUID

from binaries.models import Binary, BinaryPart, PartState, State
from binaries.storage.base import (
    ContentMissing,
    PartCheck,
    StorageError,
    Stored,
    content_disposition,
    object_key,
)

COMPLETE_READ_TIMEOUT = 600  # seconds: S3 may work for minutes on a large upload's completion
# seconds before the first byte of a whole-object GET: a store that assembles the object before
# sending (moto reads all of it into memory) took more than 15 s for 5 GiB on a busy machine,
# and each retry made it start over. A read that hangs later is the sweeper's to re-queue.
OPEN_READ_TIMEOUT = 120
SETTLE_SECONDS = 10.0  # how long a completion under way may take to show its object


class UploadGone(StorageError):
    """The store no longer has the multipart upload: completed, aborted or expired."""


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _code(exc: StorageError) -> str:
    """The store's error code behind a StorageError ("" when it did not answer)."""
    from botocore.exceptions import ClientError

    cause = exc.__cause__
    return cause.response.get("Error", {}).get("Code", "") if isinstance(cause, ClientError) else ""


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
        # CompleteMultipartUpload alone may take minutes (real S3 keeps the connection alive
        # while it assembles the parts): a client of its own with a long read timeout. A copy
        # of django-storages' backend has the same settings and connections of its own.
        self.completing = copy.copy(self.backend)
        self.completing.client_config = self.backend.client_config.merge(
            Config(read_timeout=COMPLETE_READ_TIMEOUT)
        )
        self.reading = copy.copy(self.backend)
        self.reading.client_config = self.backend.client_config.merge(
            Config(read_timeout=OPEN_READ_TIMEOUT)
        )

    @property
    def client(self) -> Any:
        return self.backend.connection.meta.client

    @property
    def completing_client(self) -> Any:
        return self.completing.connection.meta.client

    @property
    def reading_client(self) -> Any:
        return self.reading.connection.meta.client

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
            refused = UploadGone if code == "NoSuchUpload" else StorageError
            raise refused(f"The object store refused to {what} ({code}).") from exc
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
            self._abort_upload(self.key(binary), upload_id)
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
        try:
            listed = self._listed_parts(binary)
        except UploadGone:
            return self._check_gone_upload(binary, parts)
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

    def _check_gone_upload(self, binary: Binary, parts: list[BinaryPart]) -> dict[int, PartCheck]:
        """The store no longer has the upload: completed by a request whose answer was lost
        (its parts are in the object), or aborted or expired (they must be sent again, to a
        new upload: the binary forgets this one)."""
        if self._holds_declared(binary, within=SETTLE_SECONDS):
            return {part.index: PartCheck(PartState.VALID) for part in parts}
        Binary.objects.filter(
            pk=binary.pk, state=State.UPLOADABLE, upload_id=binary.upload_id
        ).update(upload_id=None)
        binary.upload_id = None
        return {
            part.index: PartCheck(
                PartState.UPLOADABLE,
                "The object store no longer has the upload this part was sent to (it was "
                f"aborted or expired); upload part {part.index} again.",
            )
            for part in parts
        }

    def _holds_declared(self, binary: Binary, within: float = 0) -> bool:
        """Whether the store holds the object at the declared size, looking again for up to
        `within` seconds: a completion under way may not show its object at once."""
        give_up = time.monotonic() + within
        while True:
            try:
                head = self._call(
                    "look at the content",
                    self.client.head_object,
                    Bucket=self.bucket,
                    Key=self.key(binary),
                )
            except StorageError as exc:
                if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
            else:
                if head["ContentLength"] == binary.size:
                    return True
            if time.monotonic() >= give_up:
                return False
            time.sleep(0.5)

    def _upload_gone(self, binary: Binary) -> bool:
        """Whether the store says it no longer has the upload (False when it cannot say)."""
        try:
            self._call(
                "list the uploaded parts",
                self.client.list_parts,
                Bucket=self.bucket,
                Key=self.key(binary),
                UploadId=binary.upload_id,
                MaxParts=1,
            )
        except UploadGone:
            return True
        except StorageError:
            return False
        return False

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
        try:
            listed = self._listed_parts(binary)
            self._call(
                "complete the upload",
                self.completing_client.complete_multipart_upload,
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
        except StorageError:
            # The store may have completed the upload and its answer been lost: botocore's
            # retry then hears NoSuchUpload, an error or a time-out. It did, when the upload
            # is gone and the object is there as declared.
            if not (
                self._upload_gone(binary) and self._holds_declared(binary, within=SETTLE_SECONDS)
            ):
                raise

    def _abort_upload(self, key: str, upload_id: str) -> None:
        """Abort an upload; one the store no longer has (aborted already, or completed, or an
        earlier answer lost and botocore's retry hearing NoSuchUpload) is done."""
        try:
            self._call(
                "abort the upload",
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
            )
        except UploadGone:
            pass
        except StorageError as exc:
            if _code(exc) != "404":
                raise

    def abort(self, binary: Binary) -> None:
        if binary.upload_id:
            self._abort_upload(self.key(binary), binary.upload_id)

    def open(self, binary: Binary) -> BinaryIO:
        try:
            response = self._call(
                "read the content",
                self.reading_client.get_object,
                Bucket=self.bucket,
                Key=self.key(binary),
            )
        except StorageError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
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

    def stored(self) -> Iterator[Stored]:
        """Every object and open multipart upload under this store's prefix."""
        prefix = ((self.backend.location or "").strip("/") + "/binaries/").lstrip("/")
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield Stored(item["Key"], _binary_uuid(item["Key"]), "object", item["LastModified"])
        uploads = self.client.get_paginator("list_multipart_uploads")
        for page in uploads.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                yield Stored(
                    f"(multipart upload) {upload['Key']}",
                    _binary_uuid(upload["Key"]),
                    "upload",
                    upload["Initiated"],
                    upload_id=upload["UploadId"],
                )

    def remove(self, item: Stored) -> None:
        if item.upload_id:
            self._abort_upload(item.key.removeprefix("(multipart upload) "), item.upload_id)
        else:
            self._call(
                "delete the content", self.client.delete_object, Bucket=self.bucket, Key=item.key
            )

    def multipart_uploads(self) -> list[tuple[str, str]]:
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [(u["Key"], u["UploadId"]) for u in uploads]


def _binary_uuid(key: str) -> UUID | None:
    """The binary a key names (.../binaries/<organization>/<binary>), or None."""
    try:
        return UUID(key.rsplit("/", 1)[-1])
    except ValueError:
        return None


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
