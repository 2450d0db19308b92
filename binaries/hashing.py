"""Integrity: verify a binary's stored content against what was declared, and re-verify it.

The hashing run that owns a binary is identified by its hashing_started_at; every progress
write and the final move are conditional on it, so a run that was reset or taken over by a
re-queued task stops without touching the row.

A run's heartbeat (hashing_heartbeat_at) is written every PROGRESS_EVERY seconds while it
reads, however slow each read is. A run whose heartbeat is older than
HASHING_TAKEOVER_SECONDS died with its worker: a redelivered task takes it over.
"""

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from binaries import lifecycle, storage, uploads
from binaries.models import Binary, State
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditAction
from peridio_console.core.errors import Conflict

log = logging.getLogger(__name__)
VERIFIER = Actor.system("verifier")
SWEEPER = Actor.system("sweeper")
SCRUBBER = Actor.system("scrubber")
PROGRESS_EVERY = 1.0  # seconds between progress writes (the run's heartbeat)


class Superseded(Exception):
    """The binary was reset, or another run took it over: stop quietly."""


def _hash_stream(
    binary: Binary, on_progress, budget_bytes_per_second: int | None = None
) -> tuple[str, int]:
    """SHA-256 and size of the stored content, read at most at the budget's pace.

    Reads run in a thread of their own (which touches no database), so on_progress is called
    at least every PROGRESS_EVERY seconds however slow a read is; while the next read is under
    way the last one is hashed. A read that brings nothing for HASHING_STALL_SECONDS stops the
    calls: that run has hung, and the sweeper re-queues it.
    """
    digest = hashlib.sha256()
    total = 0
    # Sized to the content (a read past the end brings the end): most binaries are far smaller
    # than READ_BUFFER, and zeroing two 4 MiB buffers cost more than hashing them.
    buffer_size = min(storage.READ_BUFFER, max(binary.size or 0, 1 << 16) + 1)
    buffers = [memoryview(bytearray(buffer_size)) for _ in range(2)]
    with (
        storage.get().open(binary) as stream,
        ThreadPoolExecutor(1, thread_name_prefix="hash-read") as reader,
    ):
        read = _paced_reader(stream, budget_bytes_per_second)
        pending = reader.submit(read, buffers[0])
        last_byte = last_progress = time.monotonic()
        while True:
            if not wait([pending], timeout=PROGRESS_EVERY).done:
                now = time.monotonic()
                if now - last_byte < settings.HASHING_STALL_SECONDS:
                    on_progress(total)
                    last_progress = now
                continue
            n = pending.result()
            if not n:
                return digest.hexdigest(), total
            chunk = buffers[0][:n]
            buffers.reverse()
            pending = reader.submit(read, buffers[0])
            digest.update(chunk)
            total += n
            last_byte = now = time.monotonic()
            if now - last_progress >= PROGRESS_EVERY:
                on_progress(total)
                last_progress = now


def _paced_reader(stream: Any, budget_bytes_per_second: int | None):
    """readinto() on the stream that, given a budget, returns no sooner than the budget allows."""
    started = time.monotonic()
    done = 0

    def read(buffer: memoryview) -> int:
        nonlocal done
        n = stream.readinto(buffer)
        done += n or 0
        if budget_bytes_per_second:
            ahead = done / budget_bytes_per_second - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        return n or 0

    return read


def _claim(binary: Binary) -> datetime | None:
    """Move hashable -> hashing, or take over a hashing run that died. Returns the run's id."""
    if binary.state == State.HASHABLE:
        run = timezone.now()
        try:
            lifecycle.transition(binary, to=State.HASHING, actor=VERIFIER, set_fields=_new_run(run))
        except lifecycle.TransitionRefused:
            return None
        return run
    if binary.state == State.HASHING:
        return _take_over(binary)
    return None


def _new_run(run: datetime) -> dict[str, Any]:
    return {"hashing_started_at": run, "hashing_heartbeat_at": run, "bytes_hashed": 0}


def _take_over(binary: Binary) -> datetime | None:
    """Take over the run once its heartbeat is older than HASHING_TAKEOVER_SECONDS.

    A task redelivered because its worker died arrives at once, while the dead run's last
    heartbeat is still fresh: watch it for as long as it can take to go stale. One still
    fresh after that was written since, by a live run in another worker: leave that run be.
    """
    limit = timedelta(seconds=settings.HASHING_TAKEOVER_SECONDS)
    give_up = time.monotonic() + limit.total_seconds() + PROGRESS_EVERY
    same_run = Binary.objects.filter(
        pk=binary.pk, state=State.HASHING, hashing_started_at=binary.hashing_started_at
    )
    while True:
        run = timezone.now()
        stopped = Q(hashing_heartbeat_at__isnull=True) | Q(hashing_heartbeat_at__lt=run - limit)
        if same_run.filter(stopped).update(**_new_run(run)):
            return run
        if time.monotonic() >= give_up or not same_run.exists():
            return None
        time.sleep(PROGRESS_EVERY / 2)


def verify(binary_id: int) -> str:
    """Hash the stored content and move the binary to signable, or back to uploadable.

    Returns what happened (for logs and tests). Raises storage.StorageError on a transient
    failure, leaving the binary in hashing for a retry.
    """
    binary = Binary.objects.select_related("organization").filter(pk=binary_id).first()
    if binary is None:
        return "gone"
    run = _claim(binary)
    if run is None:
        return f"skipped ({binary.state})"
    guard = {"state": State.HASHING, "hashing_started_at": run}
    budget = settings.HASHING_BYTES_PER_SECOND or None
    try:
        found, size = _hash_stream(binary, lambda done: _beat(binary, guard, done), budget)
    except Superseded:
        return "superseded"
    except storage.ContentMissing as exc:
        return _fail(binary, guard, f"The content is missing from storage ({exc}); upload again.")
    except storage.StorageError:
        # The task retries: let that retry take this run over at once (no heartbeat), and
        # mark a verification as in flight so the sweeper does not queue a second one.
        Binary.objects.filter(pk=binary.pk, **guard).update(
            hashing_heartbeat_at=None, verification_queued_at=timezone.now()
        )
        raise
    binary.refresh_from_db()
    if size != binary.size:
        return _fail(
            binary,
            guard,
            f"Size mismatch: declared {binary.size} bytes, stored content is {size} bytes "
            f"(sha256:{found}).",
        )
    if found != binary.hash:
        return _fail(
            binary,
            guard,
            f"SHA-256 mismatch: declared sha256:{binary.hash}, stored content is "
            f"sha256:{found} ({size} bytes).",
        )
    try:
        lifecycle.transition(
            binary,
            to=State.SIGNABLE,
            actor=VERIFIER,
            guard=guard,
            set_fields={"verified_hash": found, "bytes_hashed": size, "hashing_heartbeat_at": None},
            details={"sha256": found, "size": size},
        )
    except lifecycle.TransitionRefused:
        return "superseded"
    return "signable"


def _beat(binary: Binary, guard: dict[str, Any], done: int) -> None:
    """The run's heartbeat and progress, while it still owns the binary."""
    if not Binary.objects.filter(pk=binary.pk, **guard).update(
        bytes_hashed=done, hashing_heartbeat_at=timezone.now()
    ):
        raise Superseded


def _fail(binary: Binary, guard: dict, message: str) -> str:
    try:
        uploads.reset(
            binary=binary, actor=VERIFIER, reason=message, last_error=message, guard=guard
        )
    except Conflict:
        return "superseded"
    return "mismatch"


def sweep(now: datetime | None = None) -> list[int]:
    """Binaries whose verification stalled or was never queued; returns the re-queued ids."""
    now = now or timezone.now()
    stalled_before = now - timedelta(seconds=settings.HASHING_STALL_SECONDS)
    # No task in flight: never queued, or queued longer ago than a run may go without progress
    # (a re-queue that no worker has picked up yet is not queued again at every pass).
    not_in_flight = Q(verification_queued_at__isnull=True) | Q(
        verification_queued_at__lt=stalled_before
    )
    stalled = Q(hashing_heartbeat_at__isnull=True) | Q(hashing_heartbeat_at__lt=stalled_before)
    stuck = Binary.objects.filter(
        (Q(state=State.HASHING) & stalled & not_in_flight)
        | (Q(state=State.HASHABLE) & not_in_flight)
    )
    requeued = []
    for binary in stuck:
        # Claim the re-queue so two sweepers do not both record it.
        if not Binary.objects.filter(
            pk=binary.pk, state=binary.state, verification_queued_at=binary.verification_queued_at
        ).update(verification_queued_at=now):
            continue
        why = (
            f"hashing stalled (no progress for {settings.HASHING_STALL_SECONDS} s); re-queued"
            if binary.state == State.HASHING
            else "no verification in flight; queued"
        )
        lifecycle.record_event(
            binary,
            actor=SWEEPER,
            action=AuditAction.BINARY_REQUEUED,
            reason=why,
            details={"requeued": True},
        )
        requeued.append(binary.pk)
    return requeued


def scrub_one(binary: Binary) -> str:
    """Re-verify a signed binary's stored content within the scrub budget."""
    budget = settings.SCRUB_BYTES_PER_SECOND or None
    try:
        found, size = _hash_stream(binary, lambda done: None, budget)
    except storage.ContentMissing:
        found, size = "", 0
    now = timezone.now()
    Binary.objects.filter(pk=binary.pk).update(scrubbed_at=now)
    if found == binary.verified_hash and size == binary.size:
        return "ok"
    message = (
        f"Integrity check failed: the stored content is sha256:{found or 'missing'} "
        f"({size} bytes) but sha256:{binary.verified_hash} was verified; downloads are refused."
    )
    # Only a binary still signed: one destroyed meanwhile lost its content on purpose.
    if not Binary.objects.filter(
        pk=binary.pk, state=State.SIGNED, integrity_failed_at__isnull=True
    ).update(integrity_failed_at=now, last_error=message):
        return "skipped"
    lifecycle.record_event(
        binary,
        actor=SCRUBBER,
        action=AuditAction.BINARY_INTEGRITY_FAILED,
        reason=message,
        details={"found": found, "size": size},
    )
    return "failed"


def claim_for_scrub(binary: Binary) -> datetime | None:
    """Take a due binary for this scrub run: a conditional update on the scrubbed_at that was
    read, so two overlapping runs never read the same content. Returns the claim's time, or
    None when another run took it first."""
    now = timezone.now()
    claimed = Binary.objects.filter(pk=binary.pk, scrubbed_at=binary.scrubbed_at).update(
        scrubbed_at=now
    )
    return now if claimed else None


def release_scrub_claim(binary: Binary, claimed_at: datetime) -> None:
    """A scrub that could not read the content: the binary is due again at once."""
    Binary.objects.filter(pk=binary.pk, scrubbed_at=claimed_at).update(
        scrubbed_at=binary.scrubbed_at
    )


def due_for_scrub(now: datetime | None = None):
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SCRUB_INTERVAL_SECONDS)
    return (
        Binary.objects.select_related("organization")
        .filter(state=State.SIGNED, integrity_failed_at__isnull=True)
        .filter(Q(scrubbed_at__isnull=True) | Q(scrubbed_at__lt=cutoff))
        .order_by("scrubbed_at", "id")
    )
