"""The storage seam's shared vocabulary: errors, what the store says of a part, the Backend
Protocol both backends satisfy, and helpers every backend and reader uses."""

import errno
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote
from uuid import UUID

from binaries.models import Binary, BinaryPart

CHUNK = 1 << 20  # request bodies are read 1 MiB at a time
READ_BUFFER = 4 << 20  # reads for hashing and downloads


class StorageError(Exception):
    """The object store failed or refused; the message says what to do."""


class PartBusy(StorageError):
    pass


class ContentMissing(StorageError):
    """The object is not in the store (not uploaded, or deleted)."""


class StorageFull(StorageError):
    """The server's disk (or the quota on it) is full: freeing space, not waiting, fixes it."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def write_failure(exc: OSError, what: str, again: str = "Upload it again") -> StorageError:
    """A write to this server's disk that failed, in words naming `what` was not stored and
    what to do `again`."""
    failure = (
        StorageFull(
            f"The server's disk is full: {what} was not stored. {again} once space has been freed."
        )
        if exc.errno in DISK_FULL_ERRNOS
        else StorageError(
            f"The server could not store {what} ({exc.strerror or exc}); {again.lower()}."
        )
    )
    failure.__cause__ = exc  # raised after the part is recorded, outside the except block
    return failure


@dataclass(frozen=True)
class Stored:
    """One thing the store holds, for the janitor's search for what no binary owns."""

    key: str  # as listing() shows it
    binary_uuid: UUID | None  # None when the key names no binary
    kind: str  # "object" (the content) or "upload" (partial file, part files, open upload)
    modified_at: datetime
    upload_id: str = ""  # an open S3 multipart upload's id


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
    """What every caller may ask of the store; mypy checks both backends against it (get()).

    Receiving a part's bytes through this server is the filesystem backend's alone (S3 takes
    them at its presigned URLs), so it is not here: callers narrow to FilesystemStorage.
    """

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
    def download_url(self, binary: Binary, expires_at: datetime, base_url: str) -> str: ...
    def listing(self) -> list[str]: ...
    def stored(self) -> Iterator[Stored]: ...
    def remove(self, item: Stored) -> None: ...


def read_chunks(stream: Any, size: int = READ_BUFFER) -> Iterable[memoryview]:
    """Yield views of one reused buffer; the caller must use each before the next."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    while True:
        n = stream.readinto(view)
        if not n:
            return
        yield view[:n]
