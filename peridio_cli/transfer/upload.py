"""Uploading a file's parts to one binary: in parallel, declared in index order, retried with
backoff, and skipped when an earlier upload left them valid (so a rerun resumes)."""

import base64
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from peridio_cli import ui
from peridio_cli.api import UPLOAD_RETRIES, Api, Retry, backoff, error_from, one_line, redact
from peridio_cli.errors import Failed, Refused, Unavailable
from peridio_cli.transfer.hashing import Scan, bare_hash, hash_range
from peridio_cli.transfer.limits import CHUNK, DEFAULT_RETRIES, part_count

if TYPE_CHECKING:
    import httpx


def b64_digest(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


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


def declare_part(
    api: Api,
    prn: str,
    index: int,
    hash_: str | None,
    size: int,
    expected_binary_size: int | None,
) -> dict[str, Any]:
    """Declare part index of a binary (its hash and size); the part, with its upload URL."""
    body: dict[str, Any] = {"hash": hash_, "size": size}
    if expected_binary_size is not None:
        body["expected_binary_size"] = expected_binary_size
    answer = api.call(
        "PUT",
        f"/binaries/{prn}/parts/{index}",
        json=body,
        what=f"declaring part {index} of {prn}",
        retries=UPLOAD_RETRIES,
    )
    return answer["binary_part"]


def send_part(
    api: Api,
    prn: str,
    index: int,
    path: str,
    size: int,
    part_hash: str,
    *,
    retries: int,
    expected_binary_size: int | None,
) -> dict[str, Any]:
    """Upload a file as part index of a binary (skipped when the same bytes are already
    there); the part, valid."""
    existing = list_parts(api, prn)
    plan = PartPlan(index, 0, size, part_hash)
    report = Uploader(
        api,
        prn,
        path,
        [plan],
        concurrency=1,
        retries=retries,
        expected_binary_size=expected_binary_size,
        existing=existing,
    ).run()
    parts = list_parts(api, prn) if report.sent else existing
    part = parts.get(index)
    if part is None or part.get("state") != "valid":
        state = part.get("state") if part else "missing"
        raise Failed(f"part {index} of {prn} is {state} after its upload; run it again.")
    return part


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
            whole = sum(p.size for p in plans)
            with ui.Progress("uploading", whole, already=whole - total) as bar:
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
        part = declare_part(
            self.api, self.prn, plan.index, plan.hash, plan.size, self.expected_binary_size
        )
        return str(part["presigned_upload_url"])

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
        import httpx

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


def _part_state(response: "httpx.Response") -> str | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    part = body.get("binary_part") if isinstance(body, dict) else None
    return part.get("state") if isinstance(part, dict) else None


def _describe(response: "httpx.Response") -> str:
    try:
        body = response.json()
        error = body.get("error") or {}
        message = error.get("message") or ""
        code = error.get("code") or ""
    except ValueError:
        message, code = one_line(response.text[:200]), ""
    return f"HTTP {response.status_code} {code} {message}".strip()
