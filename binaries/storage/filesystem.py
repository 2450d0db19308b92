"""The filesystem backend: each object is one file under BINARIES_ROOT.

A part whose offset is known when it is declared (every lower part declared) is written
straight into the object being assembled, so completing the upload moves no bytes; any other
part waits in a file of its own and is copied into place (kernel-side) at completion.
"""

import errno
import fcntl
import hashlib
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO
from uuid import UUID

from django.urls import reverse

from binaries.models import Binary, BinaryPart, PartState
from binaries.storage.base import (
    CHUNK,
    READ_BUFFER,
    ContentMissing,
    PartBusy,
    PartCheck,
    StorageError,
    Stored,
    write_failure,
)
from binaries.storage.tokens import sign_download_token, sign_part_token


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
        self._base(binary).parent.mkdir(mode=0o700, parents=True, exist_ok=True)

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
        its turn rather than interleave, and fences this write against completion: completion
        locks the whole file before it renames it into place, so a write either holds its range
        first (and completion waits for it) or finds, once it holds it, that its file is no
        longer the one being assembled, and writes nothing.
        """
        self.start_upload(binary)
        in_place = part.offset is not None
        if in_place:
            if self.object_path(binary).exists():  # completed: the object takes no more bytes
                return PartCheck(PartState.UPLOADABLE, "superseded")
            path, start = self._partial(binary), int(part.offset or 0)
        else:
            self._parts_dir(binary).mkdir(mode=0o700, exist_ok=True)
            path, start = self._parts_dir(binary) / f"{part.index}.{part.token}", 0
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock_or_busy(fd, start, max(part.size, 1), f"Part {part.index} is being uploaded")
            if not _still_at(fd, path) or (still_current is not None and not still_current()):
                # Completed, reset or declared again while this request waited: its bytes must
                # not land in the object, nor on the new declaration's.
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
                    _write_all(fd, memoryview(chunk)[:writable], position)
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
        except OSError as exc:  # a full disk, say: the parts stay as they were
            raise write_failure(exc, "the completed upload", "Mark it hashable again") from exc
        finally:
            os.close(lock)

    def _assemble(self, binary: Binary, parts: list[BinaryPart]) -> None:
        """Put the parts together and rename the result into place, holding a lock on every
        file a part write could touch (the whole of each), so no write is under way while the
        object takes shape and none can start on it afterwards (receive_part)."""
        partial = self._partial(binary)
        if self.object_path(binary).exists() and not partial.exists():
            return  # completed by a concurrent request
        held: list[int] = []
        try:
            fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o600)
            held.append(fd)
            _lock_or_busy(fd, 0, 0, "A part is still being uploaded")
            offset = 0
            for part in sorted(parts, key=lambda p: p.index):
                if part.offset != offset:
                    source = os.open(
                        self._parts_dir(binary) / f"{part.index}.{part.token}", os.O_RDWR
                    )
                    held.append(source)
                    _lock_or_busy(source, 0, 0, f"Part {part.index} is still being uploaded")
                    _copy_range(source, fd, part.size, offset)
                offset += part.size
            os.ftruncate(fd, offset)
            os.fsync(fd)
            os.replace(partial, self.object_path(binary))
            shutil.rmtree(self._parts_dir(binary), ignore_errors=True)
        finally:
            for descriptor in held:
                os.close(descriptor)

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

    def stored(self) -> Iterator[Stored]:
        """Each binary's object, partial file and part files, as the janitor sees them."""
        if not self.root.exists():
            return
        for path in self.root.glob("*/*"):
            name, _, suffix = path.name.partition(".")
            try:
                binary_uuid: UUID | None = UUID(name)
            except ValueError:
                binary_uuid = None
            yield Stored(
                key=str(path.relative_to(self.root)),
                binary_uuid=binary_uuid,
                kind="object" if suffix == "bin" else "upload",
                modified_at=datetime.fromtimestamp(path.stat().st_mtime, tz=UTC),
            )

    def remove(self, item: Stored) -> None:
        path = self.root / item.key
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

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


def _write_all(fd: int, data: memoryview, position: int) -> None:
    """pwrite until every byte is written (a nearly full disk may take only some)."""
    while data:
        written = os.pwrite(fd, data, position)
        data, position = data[written:], position + written


def _lock_or_busy(fd: int, start: int, length: int, busy: str) -> None:
    """Lock a range (length 0: to the end of the file, however long it grows), or raise
    PartBusy saying what holds it."""
    try:
        _lock_range(fd, start, length)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            raise PartBusy(
                f"{busy} by another request; wait for it to finish, then try again."
            ) from None
        raise


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file is still the one at `path` (not renamed or deleted meanwhile)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


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
