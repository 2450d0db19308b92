"""Moving bytes: hash a file, upload it in parts (parallel, retried, resumable), wait for
the server's verification, and download with resume.

Memory stays bounded whatever the file size: the file is read in 1 MiB chunks (hashing) or
with os.pread of 1 MiB at a time straight into the request body (uploading), so each worker
holds about one chunk, never a part and never the file.
"""

import base64
import hashlib
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import httpx

from peridio_cli import ui
from peridio_cli.api import Api, backoff, error_from, network_error, one_line, redact
from peridio_cli.errors import ApiError, Failed, Refused, Unavailable, UsageProblem

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
CHUNK = 1 * MiB  # read and send buffer
MIN_PART_SIZE = 5 * MiB  # every part but the last (S3's rule, the server's too)
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
DEFAULT_MIN_PART_SIZE = 8 * MiB
MAX_DEFAULT_PART_SIZE = 64 * MiB
TARGET_PARTS = 64
DEFAULT_RETRIES = 5
DEFAULT_WAIT_SECONDS = 3600


def default_concurrency() -> int:
    return min(2 * (os.cpu_count() or 1), 8)


def default_part_size(size: int) -> int:
    """Whole MiB: at least 8 MiB; about 1/64 of the file up to 64 MiB (fewer, larger parts
    cost less per byte on the server, 64 still keep 8 workers busy and a retry small); and
    large enough that there are at most 10,000 parts."""
    share = min(math.ceil(size / TARGET_PARTS), MAX_DEFAULT_PART_SIZE)
    needed = max(DEFAULT_MIN_PART_SIZE, share, math.ceil(size / MAX_PARTS))
    return math.ceil(needed / MiB) * MiB


def check_part_size(part_size: int, size: int) -> None:
    if part_size > MAX_PART_SIZE:
        raise UsageProblem(f"--binary-part-size can be at most 5 GiB ({MAX_PART_SIZE} bytes).")
    if part_size < MIN_PART_SIZE and size > part_size:
        raise UsageProblem(
            f"--binary-part-size must be at least 5 MiB ({MIN_PART_SIZE} bytes) when the file "
            f"needs more than one part; got {part_size}."
        )
    if size and math.ceil(size / part_size) > MAX_PARTS:
        raise UsageProblem(
            f"--binary-part-size {part_size} makes {math.ceil(size / part_size)} parts; at most "
            f"{MAX_PARTS} are allowed: use at least {default_part_size(size)}."
        )


def bare_hash(value: str | None) -> str | None:
    """A declared hash without its sha256: prefix, lowercase."""
    if value is None:
        return None
    value = value.strip()
    if value.lower().startswith("sha256:"):
        value = value[7:]
    return value.lower()


def b64_digest(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def open_file(path: str) -> BinaryIO:
    try:
        handle = open(path, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror}.") from None
    if not os.path.isfile(path):
        handle.close()
        raise UsageProblem(f"{path} is not a regular file.")
    return handle


# --- Hashing --------------------------------------------------------------------------------


@dataclass
class Scan:
    path: str
    size: int
    digest: str  # hex SHA-256 of the whole file
    part_size: int
    part_hashes: list[str]


def part_count(size: int, part_size: int) -> int:
    return math.ceil(size / part_size) if size else 0


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


# --- Uploading ------------------------------------------------------------------------------


@dataclass
class PartPlan:
    index: int
    offset: int
    size: int
    hash: str | None  # None: the worker hashes the part just before declaring it


@dataclass
class UploadReport:
    parts: int = 0
    sent: int = 0
    skipped: int = 0
    retried: int = 0
    bytes_sent: int = 0


class Retry(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FileChanged(Exception):
    pass


def plans_for(scan_result: Scan) -> list[PartPlan]:
    plans = []
    for n, digest in enumerate(scan_result.part_hashes):
        offset = n * scan_result.part_size
        plans.append(
            PartPlan(n + 1, offset, min(scan_result.part_size, scan_result.size - offset), digest)
        )
    return plans


def plans_unhashed(size: int, part_size: int) -> list[PartPlan]:
    return [
        PartPlan(n + 1, n * part_size, min(part_size, size - n * part_size), None)
        for n in range(part_count(size, part_size))
    ]


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


def list_parts(api: Api, prn: str) -> dict[int, dict[str, Any]]:
    answer = api.call("GET", f"/binaries/{prn}/parts", what=f"listing the parts of {prn}")
    return {int(p["index"]): p for p in (answer or {}).get("binary_parts", [])}


def already_valid(plan: PartPlan, part: dict[str, Any] | None) -> bool:
    return (
        part is not None
        and part.get("state") == "valid"
        and int(part.get("size", -1)) == plan.size
        and bare_hash(part.get("hash")) == plan.hash
    )


def adopt_layout(existing: dict[int, dict[str, Any]], size: int, chosen: int | None) -> int | None:
    """The part size an earlier, interrupted upload used, so a rerun resumes it; None when
    there is nothing to adopt (or the user chose a size)."""
    if chosen is not None or 1 not in existing:
        return None
    first = int(existing[1].get("size") or 0)
    if first <= 0 or first > MAX_PART_SIZE:
        return None
    if first < size and (first < MIN_PART_SIZE or part_count(size, first) > MAX_PARTS):
        return None
    return min(first, size) if size else None


class Uploader:
    """Send parts of a file to one binary; parts already valid with the same hash and size
    are skipped, so a rerun after an interruption sends only what is missing."""

    def __init__(
        self,
        api: Api,
        prn: str,
        path: str,
        plans: list[PartPlan],
        *,
        concurrency: int,
        retries: int = DEFAULT_RETRIES,
        expected_binary_size: int | None = None,
        existing: dict[int, dict[str, Any]] | None = None,
        whole_file: bool = False,
    ):
        self.api = api
        self.prn = prn
        self.path = path
        self.plans = plans
        self.concurrency = concurrency
        self.retries = retries
        self.expected_binary_size = expected_binary_size
        self.existing = existing or {}
        self.whole_file = whole_file
        self.report = UploadReport()
        self.abort = threading.Event()
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.declared: list[threading.Event] = []
        self.bar = ui.Progress("uploading", 0, enabled=False)

    def run(self) -> UploadReport:
        plans = self.plans
        count = len(plans)
        stale = sorted(i for i in self.existing if i > count) if self.whole_file else []
        if stale:
            first = self.existing.get(1, {}).get("size", "N")
            raise Refused(
                f"binary {self.prn} holds parts {stale[0]}-{stale[-1]} from an earlier upload "
                f"with smaller parts than this one's {count}; rerun with --binary-part-size "
                f"{first} to resume it."
            )
        todo = [p for p in plans if not already_valid(p, self.existing.get(p.index))]
        self.report.parts = count
        self.report.skipped = count - len(todo)
        if self.report.skipped:
            ui.note(
                f"{self.report.skipped} of {count} part(s) already uploaded; sending the "
                f"other {len(todo)}."
            )
        if not todo:
            return self.report
        total = sum(p.size for p in todo)
        # Parts are declared in index order (each waits for the previous declaration), so
        # on the filesystem backend every part's offset is known when its bytes arrive and
        # they are written in place; the uploads themselves run in parallel.
        self.declared = [threading.Event() for _ in todo]
        work: queue.Queue[int] = queue.Queue()
        for n in range(len(todo)):
            work.put(n)
        workers = max(1, min(self.concurrency, len(todo)))
        started = time.monotonic()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            with ui.Progress("uploading", total) as bar:
                self.bar = bar
                threads = [
                    threading.Thread(
                        target=self._worker, args=(work, todo, fd), daemon=True, name=f"part-{w}"
                    )
                    for w in range(workers)
                ]
                for thread in threads:
                    thread.start()
                try:
                    for thread in threads:
                        while thread.is_alive():
                            thread.join(0.2)
                except KeyboardInterrupt:
                    self._stop()
                    raise
        finally:
            os.close(fd)
        if self.errors:
            raise self.errors[0]
        ui.debug(
            f"uploaded {len(todo)} part(s), {total} bytes, {workers} at once, in "
            f"{time.monotonic() - started:.2f} s"
        )
        return self.report

    def _stop(self) -> None:
        self.abort.set()
        for event in self.declared:
            event.set()

    def _worker(self, work: "queue.Queue[int]", todo: list[PartPlan], fd: int) -> None:
        while not self.abort.is_set():
            try:
                n = work.get_nowait()
            except queue.Empty:
                return
            try:
                self._send(todo[n], n, fd)
            except BaseException as exc:
                with self.lock:
                    self.errors.append(exc)
                self._stop()
                return

    def _declare(self, plan: PartPlan) -> str:
        body: dict[str, Any] = {"hash": plan.hash, "size": plan.size}
        if self.expected_binary_size is not None:
            body["expected_binary_size"] = self.expected_binary_size
        answer = self.api.call(
            "PUT",
            f"/binaries/{self.prn}/parts/{plan.index}",
            json=body,
            what=f"declaring part {plan.index} of {self.prn}",
        )
        return str(answer["binary_part"]["presigned_upload_url"])

    def _send(self, plan: PartPlan, n: int, fd: int) -> None:
        try:
            if plan.hash is None:  # in parallel with the other workers, before the queue
                plan.hash = hash_range(fd, plan.offset, plan.size)
                if already_valid(plan, self.existing.get(plan.index)):
                    with self.lock:
                        self.report.skipped += 1
                    self.bar.advance(plan.size)
                    return
            if n > 0:
                self.declared[n - 1].wait()
            if self.abort.is_set():
                return
            url: str | None = self._declare(plan)
        finally:
            self.declared[n].set()
        attempt = 0
        rehashed = False
        while not self.abort.is_set():
            if url is None:
                url = self._declare(plan)
            try:
                self._put(url, plan, fd)
                with self.lock:
                    self.report.sent += 1
                    self.report.bytes_sent += plan.size
                return
            except FileChanged:
                if rehashed or hash_range(fd, plan.offset, plan.size) != plan.hash:
                    raise Failed(
                        f"{self.path} changed while it was being uploaded (part {plan.index} "
                        "no longer has the SHA-256 it had when hashed); rerun the command."
                    ) from None
                rehashed = True
                reason = f"part {plan.index} arrived damaged"
            except Retry as exc:
                reason = exc.reason
            attempt += 1
            with self.lock:
                self.report.retried += 1
            if attempt > self.retries:
                raise Unavailable(
                    f"part {plan.index} of {self.prn} failed {attempt} times (last: {reason}). "
                    "Rerun the same command to resume: parts already uploaded are kept."
                )
            delay = backoff(attempt - 1)
            ui.note(
                f"part {plan.index}: {reason}; retrying in {delay:.1f} s "
                f"(attempt {attempt + 1} of {self.retries + 1})."
            )
            if self.abort.wait(delay):
                return
            url = None  # a fresh declaration: a new URL, and any stray earlier PUT superseded

    def _body(self, fd: int, plan: PartPlan, sent: list[int]) -> Iterator[bytes]:
        done = 0
        while done < plan.size:
            if self.abort.is_set():
                raise Retry("aborted")
            chunk = os.pread(fd, min(CHUNK, plan.size - done), plan.offset + done)
            if not chunk:
                raise FileChanged()
            done += len(chunk)
            sent[0] += len(chunk)
            self.bar.advance(len(chunk))
            yield chunk

    def _put(self, url: str, plan: PartPlan, fd: int) -> None:
        assert plan.hash is not None
        headers = {
            "Content-Length": str(plan.size),
            "x-amz-checksum-sha256": b64_digest(plan.hash),
        }
        sent = [0]
        started = time.monotonic()
        try:
            response = self.api.transfer.put(
                url, content=self._body(fd, plan, sent), headers=headers
            )
        except httpx.TransportError as exc:
            self.bar.advance(-sent[0])
            raise Retry(f"network error ({one_line(str(exc)) or type(exc).__name__})") from None
        except BaseException:
            self.bar.advance(-sent[0])
            raise
        ui.debug(
            f"PUT {redact(url)} part {plan.index} ({plan.size} bytes) -> "
            f"{response.status_code} ({(time.monotonic() - started) * 1000:.0f} ms)"
        )
        status = response.status_code
        if status < 300:
            state = _part_state(response)
            if state in (None, "valid"):
                return
            self.bar.advance(-sent[0])
            if state in ("invalid_hash", "invalid_size"):
                raise FileChanged()
            raise Retry(f"part {plan.index} is {state} after its upload")
        self.bar.advance(-sent[0])
        text = response.text[:2000]
        if status == 422 or (status == 400 and ("Digest" in text or "hecksum" in text)):
            raise FileChanged()
        if status in (403, 404, 408, 409, 429) or status >= 500:
            raise Retry(_describe(response))
        error = error_from(response, f"uploading part {plan.index} of {self.prn}")
        raise error


def _part_state(response: httpx.Response) -> str | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    part = body.get("binary_part") if isinstance(body, dict) else None
    return part.get("state") if isinstance(part, dict) else None


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error") or {}
        message = error.get("message") or ""
        code = error.get("code") or ""
    except ValueError:
        message, code = one_line(response.text[:200]), ""
    return f"HTTP {response.status_code} {code} {message}".strip()


# --- Completing and waiting --------------------------------------------------------------


def mark_hashable(api: Api, prn: str, declare: dict[str, Any] | None = None) -> dict[str, Any]:
    """Tell the server the upload is finished (declaring hash or size first, in the same
    request, when given); harmless if it already knows."""
    try:
        answer = api.call(
            "PATCH",
            f"/binaries/{prn}",
            json={**(declare or {}), "state": "hashable"},
            what=f"completing the upload of {prn} (state hashable)",
            retries=2,
        )
        return answer["binary"]
    except ApiError as exc:
        if exc.status != 409:
            raise
        binary = api.get_binary(prn)
        if binary["state"] in ("hashable", "hashing", "signable", "signed"):
            return binary
        raise


def wait_verified(api: Api, binary: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll until the server has verified the content (signable or signed)."""
    prn = binary["prn"]
    size = int(binary.get("size") or 0)
    started = time.monotonic()
    deadline = started + timeout
    interval = 0.05
    state = binary["state"]
    with ui.Progress("verifying", size) as bar:
        while True:
            state = binary["state"]
            if state in ("signable", "signed"):
                bar.set(size, detail=state)
                ui.debug(f"verified by the server in {time.monotonic() - started:.2f} s")
                return binary
            if state == "uploadable":
                reason = one_line(binary.get("last_error") or "") or "the content was rejected."
                raise Failed(
                    f"the server's verification of {prn} failed: {reason} The binary is "
                    "uploadable again: check the file and its declared hash, then rerun."
                )
            if state == "destroyed":
                raise Refused(f"binary {prn} was destroyed while waiting for its verification.")
            done = int(binary.get("bytes_hashed") or 0)
            bar.set(done, detail=state)
            if time.monotonic() >= deadline:
                share = f", {done * 100 // size}% hashed" if size else ""
                raise Failed(
                    f"timed out after {timeout:g} s waiting for {prn} to be verified (state "
                    f"{state}{share}). It continues on the server: check with `peridio binaries "
                    f"get --prn {prn}`, or rerun the command to wait again (nothing is sent "
                    "twice). A binary that stays hashable means no Celery worker is running."
                )
            time.sleep(interval)
            # Poll briskly (a verification is often a few seconds), slower after a minute.
            cap = 0.25 if time.monotonic() - started < 60 else 1.0
            interval = min(cap, interval * 1.5)
            binary = api.get_binary(prn)


# --- Downloading --------------------------------------------------------------------------


def download(
    api: Api, binary: dict[str, Any], dest: str, *, expires_in: int | None, retries: int
) -> dict[str, Any]:
    """Fetch a signed binary's content into dest, resuming a partial file with Range, and
    check its SHA-256 at the end. Returns a summary."""
    prn = binary["prn"]
    expected = bare_hash(binary.get("hash"))
    size = int(binary.get("size") or 0)
    to_stdout = dest == "-"
    digest = hashlib.sha256()
    have = 0
    if not to_stdout and os.path.exists(dest):
        have = os.path.getsize(dest)
        if have > size:
            ui.note(f"{dest} is larger than the binary ({have} > {size} bytes); starting over.")
            have = 0
        elif have:
            with open(dest, "rb") as existing, ui.Progress("checking", have) as bar:
                left = have
                while left:
                    chunk = existing.read(min(CHUNK, left))
                    if not chunk:
                        break
                    digest.update(chunk)
                    left -= len(chunk)
                    bar.advance(len(chunk))
            if have < size:
                ui.note(f"resuming {dest} at byte {have} of {size}.")
    resumed_from = have
    out: BinaryIO
    if to_stdout:
        out = sys.stdout.buffer
    else:
        out = open(dest, "r+b" if os.path.exists(dest) else "wb")  # noqa: SIM115
        out.truncate(have)
        out.seek(have)
    try:
        url: str | None = None
        attempt = 0
        with ui.Progress("download", size) as bar:
            bar.set(have)
            while have < size:
                if url is None:
                    answer = api.call(
                        "GET",
                        f"/binaries/{prn}/download_url",
                        params={"expires_in": expires_in},
                        what=f"getting a download URL for {prn}",
                    )
                    url = str(answer["download_url"])
                headers = {"Range": f"bytes={have}-"} if have else {}
                try:
                    with api.transfer.stream("GET", url, headers=headers) as response:
                        ui.debug(f"GET {redact(url)} {headers} -> {response.status_code}")
                        if response.status_code == 200 and have:
                            ui.note("the server ignored the range; downloading from the start.")
                            if to_stdout:
                                raise Failed("cannot restart a download written to stdout.")
                            have = 0
                            digest = hashlib.sha256()
                            out.seek(0)
                            out.truncate(0)
                            bar.set(0)
                        elif response.status_code == 206:
                            start = _range_start(response.headers.get("content-range", ""))
                            if start != have:
                                raise Failed(
                                    f"the server answered range {start} for byte {have}; "
                                    "remove the partial file and run again."
                                )
                        elif response.status_code in (401, 403, 404) and attempt < retries:
                            raise Retry(f"HTTP {response.status_code} (URL expired?)")
                        elif response.status_code != 200:
                            response.read()
                            raise error_from(response, f"downloading {prn}")
                        for chunk in response.iter_bytes(CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            have += len(chunk)
                            bar.advance(len(chunk))
                        if have < size:
                            raise Retry("the connection ended early")
                except (httpx.TransportError, Retry) as exc:
                    out.flush()
                    attempt += 1
                    if attempt > retries:
                        if isinstance(exc, httpx.TransportError):
                            raise network_error(exc, f"downloading {prn}", api.root) from None
                        raise Unavailable(f"downloading {prn} failed: {exc}") from None
                    ui.note(f"download interrupted ({exc}); resuming at byte {have}.")
                    time.sleep(backoff(attempt - 1))
                    url = None
    finally:
        out.flush()
        if not to_stdout:
            out.close()
    found = digest.hexdigest()
    if expected and found != expected:
        if not to_stdout:
            os.replace(dest, dest + ".corrupt")
        raise Failed(
            f"the downloaded content's SHA-256 is {found}, not the binary's {expected}; kept "
            f"it as {dest}.corrupt. Run the command again."
        )
    return {
        "prn": prn,
        "file": dest,
        "size": have,
        "hash": f"sha256:{found}",
        "resumed_from": resumed_from,
        "verified": bool(expected),
    }


def _range_start(content_range: str) -> int:
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1
