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

from pathlib import Path
from typing import Any

from django.conf import settings

from binaries.storage.base import (
    CHUNK,
    READ_BUFFER,
    Backend,
    ContentMissing,
    PartBusy,
    PartCheck,
    StorageError,
    StorageFull,
    Stored,
    content_disposition,
    object_key,
    read_chunks,
    write_failure,
)
from binaries.storage.filesystem import FilesystemStorage
from binaries.storage.s3 import S3Storage

__all__ = [
    "CHUNK",
    "READ_BUFFER",
    "Backend",
    "ContentMissing",
    "FilesystemStorage",
    "PartBusy",
    "PartCheck",
    "S3Storage",
    "StorageError",
    "StorageFull",
    "Stored",
    "content_disposition",
    "get",
    "object_key",
    "read_chunks",
    "write_failure",
]

# --- Selection ----------------------------------------------------------------------------

_chosen: dict[str, Backend] = {}


def get() -> Backend:
    """The configured backend (FilesystemStorage or S3Storage), built once per configuration."""
    from django.core.files.storage import storages

    config = repr(
        (settings.STORAGE_BACKEND, settings.STORAGES.get("binaries"), settings.BINARIES_ROOT)
    )
    if config not in _chosen:
        _chosen.clear()
        if settings.STORAGE_BACKEND == "s3":
            options: Any = settings.STORAGES["binaries"]
            _chosen[config] = S3Storage(storages.create_storage(options))
        else:
            _chosen[config] = FilesystemStorage(Path(settings.BINARIES_ROOT))
    return _chosen[config]
