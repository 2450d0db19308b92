"""The S3 backend: real multipart uploads through django-storages' boto3 client. Presigned
UploadPart URLs carry the part's SHA-256 as a signed header, so the store refuses other bytes.
"""

import base64
import io
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, BinaryIO
from uuid import UUID

from binaries.models import Binary, BinaryPart, PartState
from binaries.storage.base import (
    ContentMissing,
    PartCheck,
    StorageError,
    Stored,
    content_disposition,
    object_key,
)


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
            key = item.key.removeprefix("(multipart upload) ")
            self._call(
                "abort the upload",
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=item.upload_id,
            )
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
