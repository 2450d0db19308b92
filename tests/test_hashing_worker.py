"""Verification by real Celery worker processes, on the test's own database and broker (the
`workers` fixture, tests/worker_fixtures.py)."""

import hashlib
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from binaries import services, tasks, uploads
from binaries.models import Binary, BinaryEvent, PartState, State
from binaries.storage import tokens
from tests.upload_helpers import MiB, new_binary, random_bytes, sha256, upload_all
from tests.worker_fixtures import VERIFY_TIMEOUT, Workers, moves, state_of

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_worker_verifies_uploaded_binaries(client, backend, workers, version, actor):
    good_data = random_bytes(11 * MiB + 5)
    bad_data = random_bytes(5 * MiB)
    good = new_binary(version, actor, good_data, target="aarch64-linux-gnu")
    bad = new_binary(version, actor, random_bytes(len(bad_data)), target="x86_64-linux-gnu")
    upload_all(client, good, good_data)
    upload_all(client, bad, bad_data)
    workers.start()

    uploads.mark_hashable(binary=good, actor=actor)  # queued on commit, to the real broker
    uploads.mark_hashable(binary=bad, actor=actor)

    workers.wait_for(
        lambda: state_of(good) == State.SIGNABLE and state_of(bad) == State.UPLOADABLE,
        VERIFY_TIMEOUT,
        "one binary signable and the other back to uploadable",
    )
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.verified_hash == sha256(good_data)
    assert good.bytes_hashed == len(good_data)
    assert moves(good)[1:] == [
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
    ]
    assert bad.last_error == (
        f"SHA-256 mismatch: declared sha256:{bad.hash}, stored content is "
        f"sha256:{sha256(bad_data)} ({len(bad_data)} bytes)."
    )
    assert bad.parts.count() == 0
    assert not [key for key in backend.listing() if str(bad.uuid) in key]  # content deleted
    assert "Traceback" not in workers.output()


# --- A worker killed mid-hash --------------------------------------------------------------

CRASH_SIZE = 300 * MiB
CRASH_PART = 100 * MiB
RUN_SLICE = 0.005  # seconds the throttled worker may run...
STOP_SLICE = 0.095  # ...then stand still: hashing at ~5 % of full speed, kill-able mid-way


class Throttle(threading.Thread):
    """Let a worker's process group run RUN_SLICE out of every RUN_SLICE + STOP_SLICE seconds
    (SIGCONT / SIGSTOP), until stop(), which leaves it stopped."""

    def __init__(self, workers: Workers, proc: subprocess.Popen):
        super().__init__(daemon=True)
        self.workers = workers
        self.proc = proc
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.workers.signal(self.proc, signal.SIGCONT)
            time.sleep(RUN_SLICE)
            self.workers.signal(self.proc, signal.SIGSTOP)
            self.done.wait(STOP_SLICE)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)


def write_random(path: Path, size: int, part_size: int) -> tuple[str, list[str]]:
    """Random content written 4 MiB at a time; its SHA-256 and each part's."""
    whole = hashlib.sha256()
    parts: list[str] = []
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            part = hashlib.sha256()
            end = min(written + part_size, size)
            while written < end:
                chunk = os.urandom(min(4 * MiB, end - written))
                handle.write(chunk)
                whole.update(chunk)
                part.update(chunk)
                written += len(chunk)
            parts.append(part.hexdigest())
    return whole.hexdigest(), parts


def store_parts(binary: Binary, source: Path, part_size: int, part_hashes: list[str]) -> None:
    """Each part through the protocol: declared, then streamed from the file to its upload URL
    handler (as the filesystem upload view does with a request body)."""
    size = source.stat().st_size
    for index, part_hash in enumerate(part_hashes, start=1):
        offset = (index - 1) * part_size
        length = min(part_size, size - offset)
        declared = uploads.part_declare(
            binary=binary, index=index, hash=part_hash, size=length, base_url="http://testserver/"
        )
        payload = tokens.read_part_token(declared.upload_url.rsplit("/", 1)[1])
        with open(source, "rb") as stream:
            stream.seek(offset)
            part = uploads.part_receive(token_payload=payload, stream=stream, length=length)
        assert part.state == PartState.VALID, part.last_error


@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_a_worker_killed_mid_hash_is_taken_over_after_the_sweeper_requeues(
    backend, workers, version, actor, settings, tmp_path
):
    source = tmp_path / "firmware.img"
    digest, part_hashes = write_random(source, CRASH_SIZE, CRASH_PART)
    binary = services.binary_create(
        artifact_version=version,
        target="aarch64-linux-gnu",
        actor=actor,
        hash=digest,
        size=CRASH_SIZE,
    )
    store_parts(binary, source, CRASH_PART, part_hashes)
    source.unlink()
    first = workers.start()
    # Slow the worker down (a slow disk, a busy machine) so that it is still hashing when its
    # first progress write lands, however fast this machine hashes.
    throttle = Throttle(workers, first)
    throttle.start()

    uploads.mark_hashable(binary=binary, actor=actor)

    # Once the run has written progress, kill -9 the whole worker mid-hash.
    deadline = time.monotonic() + VERIFY_TIMEOUT
    try:
        while True:
            row = Binary.objects.values("state", "bytes_hashed").get(pk=binary.pk)
            if row["bytes_hashed"] > 0:
                break
            assert row["state"] in (State.HASHABLE, State.HASHING), (
                f"{row['state']} before the kill\n{workers.output()}"
            )
            assert time.monotonic() < deadline, f"no progress written\n{workers.output()}"
            time.sleep(0.02)
    finally:
        throttle.stop()  # leaves the worker stopped
    workers.kill(first)

    binary.refresh_from_db()
    assert binary.state == State.HASHING
    assert 0 < binary.bytes_hashed < CRASH_SIZE
    killed_run = binary.hashing_started_at
    assert killed_run is not None and binary.hashing_heartbeat_at is not None

    # A new worker; the sweeper re-queues the run once its heartbeat is older than the stall
    # delay, and the new worker takes it over from the start.
    settings.HASHING_STALL_SECONDS = 3
    workers.start(HASHING_STALL_SECONDS="3")
    stale_at = binary.hashing_heartbeat_at + timedelta(seconds=3.5)
    time.sleep(max(0.0, (stale_at - timezone.now()).total_seconds()))
    assert tasks.sweep() == 1

    workers.wait_for(lambda: state_of(binary) == State.SIGNABLE, VERIFY_TIMEOUT, "signable")
    binary.refresh_from_db()
    assert binary.verified_hash == digest
    assert binary.bytes_hashed == CRASH_SIZE
    assert binary.hashing_started_at != killed_run  # the new run's
    events = list(BinaryEvent.objects.filter(binary=binary))
    assert [(e.from_state, e.to_state) for e in events] == [
        ("", "uploadable"),
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "hashing"),  # the sweeper's re-queue
        ("hashing", "signable"),
    ]
    requeue = events[3]
    assert requeue.actor_label == "system: sweeper"
    assert requeue.details == {"requeued": True}
    assert "no progress for 3 s" in requeue.reason
    pairs = Counter((e.from_state, e.to_state) for e in events if e.details != {"requeued": True})
    assert max(pairs.values()) == 1, pairs
    assert tasks.sweep() == 0
