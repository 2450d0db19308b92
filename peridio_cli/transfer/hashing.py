"""SHA-256 of files and parts: one read of the file for the whole and each part, a part
hashed where it lies, and the whole file hashed in a thread while its parts upload."""

import hashlib
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO

from peridio_cli import ui
from peridio_cli.errors import Failed, UsageProblem
from peridio_cli.transfer.limits import CHUNK, part_count


def bare_hash(value: str | None) -> str | None:
    """A declared hash without its sha256: prefix, lowercase."""
    if value is None:
        return None
    value = value.strip()
    if value.lower().startswith("sha256:"):
        value = value[7:]
    return value.lower()


def open_file(path: str) -> BinaryIO:
    try:
        handle = open(path, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror}.") from None
    if not os.path.isfile(path):
        handle.close()
        raise UsageProblem(f"{path} is not a regular file.")
    return handle


def file_digest(path: str) -> str:
    """The hex SHA-256 of a whole file, read in chunks."""
    digest = hashlib.sha256()
    with open_file(path) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Scan:
    path: str
    size: int
    digest: str  # hex SHA-256 of the whole file
    part_size: int
    part_hashes: list[str]


def scan(path: str, part_size: int, label: str = "hashing") -> Scan:
    """The file's SHA-256 and each part's, in one read of the file.

    The whole-file digest is computed here; part digests in a second thread fed the same
    chunks (hashlib releases the GIL), so the two use two cores and take the time of one.
    """
    with open_file(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        count = part_count(size, part_size)
        whole = hashlib.sha256()
        part_hashes: list[str] = []
        chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        helper: threading.Thread | None = None
        failure: list[BaseException] = []

        def hash_parts() -> None:
            try:
                current = hashlib.sha256()
                filled = 0
                while (chunk := chunks.get()) is not None:
                    view = memoryview(chunk)
                    while view:
                        take = min(len(view), part_size - filled)
                        current.update(view[:take])
                        filled += take
                        view = view[take:]
                        if filled == part_size:
                            part_hashes.append(current.hexdigest())
                            current, filled = hashlib.sha256(), 0
                if filled:
                    part_hashes.append(current.hexdigest())
            except BaseException as exc:  # pragma: no cover - reported below
                failure.append(exc)

        if count > 1:
            helper = threading.Thread(target=hash_parts, name="part-hasher", daemon=True)
            helper.start()
        read = 0
        started = time.monotonic()
        try:
            with ui.Progress(label, size) as bar:
                while True:
                    chunk = handle.read(CHUNK)
                    if not chunk:
                        break
                    if helper is not None:
                        chunks.put(chunk)
                    whole.update(chunk)
                    read += len(chunk)
                    bar.advance(len(chunk))
        finally:
            if helper is not None:
                chunks.put(None)
                helper.join()
    if failure:
        raise Failed(f"hashing the parts of {path} failed: {failure[0]}")
    if read != size:
        raise Failed(f"{path} changed size while it was being read ({size} then {read} bytes).")
    digest = whole.hexdigest()
    if count == 1:
        part_hashes = [digest]
    ui.debug(f"hashed {path}: {size} bytes, {count} part(s) in {time.monotonic() - started:.2f} s")
    return Scan(path, size, digest, part_size, part_hashes)


def hash_range(fd: int, offset: int, length: int) -> str:
    digest = hashlib.sha256()
    done = 0
    while done < length:
        chunk = os.pread(fd, min(CHUNK, length - done), offset + done)
        if not chunk:
            break
        digest.update(chunk)
        done += len(chunk)
    return digest.hexdigest()


class BackgroundHash(threading.Thread):
    """The whole file's SHA-256, computed while its parts upload (the upload waits on the
    network and the server's disk, so the hash costs no wall-clock time)."""

    def __init__(self, path: str):
        super().__init__(name="file-hasher", daemon=True)
        self.path = path
        self.digest = ""
        self.size = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            digest = hashlib.sha256()
            with open(self.path, "rb", buffering=0) as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    self.size += len(chunk)
            self.digest = digest.hexdigest()
            ui.debug(f"hashed {self.path} while uploading: {time.monotonic() - started:.2f} s")
        except BaseException as exc:
            self.error = exc

    def result(self, expected_size: int) -> str:
        self.join()
        if self.error is not None:
            raise Failed(f"hashing {self.path} failed: {self.error}")
        if self.size != expected_size:
            raise Failed(
                f"{self.path} changed size while it was being uploaded ({expected_size} then "
                f"{self.size} bytes); rerun the command."
            )
        return self.digest
