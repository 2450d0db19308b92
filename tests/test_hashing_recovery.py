"""A worker lost mid-hash costs seconds, not minutes.

A run writes its heartbeat every second while it reads, however slow the reads are, and stops
when a read has brought nothing for HASHING_STALL_SECONDS (the sweeper's case). A task
delivered again because its worker died takes over a run whose heartbeat is older than
HASHING_TAKEOVER_SECONDS, and leaves a live run (one that keeps beating) alone.
"""

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.utils import timezone

from binaries import hashing, moves, tasks
from binaries.models import Binary, BinaryEvent, State
from tests.upload_helpers import MiB, new_binary, random_bytes, sha256, upload_all


def moves_of(binary: Binary) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in BinaryEvent.objects.filter(binary=binary)]


def hashing_run(client, version, actor, data: bytes) -> Binary:
    """A binary in hashing whose run was claimed by a worker that then died at once."""
    binary = new_binary(version, actor, data)
    upload_all(client, binary, data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks, "enqueue_verification", lambda binary_id: None)
        moves.mark_hashable(binary=binary, actor=actor)
    binary = Binary.objects.select_related("organization").get(pk=binary.pk)
    assert hashing._claim(binary) is not None
    return Binary.objects.select_related("organization").get(pk=binary.pk)


@contextlib.contextmanager
def beating(binary: Binary, every: float) -> Iterator[None]:
    """Another worker's live run: its heartbeat written every `every` seconds."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                Binary.objects.filter(pk=binary.pk).update(hashing_heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


# --- The heartbeat and the take-over, in process ----------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_beats_every_second_while_reads_are_slow(
    client, backend, version, actor, settings, monkeypatch
):
    data = random_bytes(5 * MiB)  # a 4 MiB read that takes 2 s, then 1 MiB
    binary = hashing_run(client, version, actor, data)
    Binary.objects.filter(pk=binary.pk).update(hashing_heartbeat_at=None)  # taken at once
    settings.HASHING_BYTES_PER_SECOND = 2 * MiB
    beats: list[tuple[float, int]] = []
    real_beat = hashing._beat
    started = time.monotonic()

    def recorded(target, guard, done):
        beats.append((time.monotonic() - started, done))
        real_beat(target, guard, done)

    monkeypatch.setattr(hashing, "_beat", recorded)

    assert hashing.verify(binary.pk) == "signable"

    elapsed = time.monotonic() - started
    assert elapsed >= 2.4  # the budget held
    # A heartbeat in the first second and at least every second after, with the first read
    # still under way (nothing hashed yet).
    times = [0.0] + [at for at, _ in beats] + [elapsed]
    assert max(b - a for a, b in itertools.pairwise(times)) < 1.6, beats
    assert beats[0][1] == 0, beats
    binary.refresh_from_db()
    assert binary.verified_hash == sha256(data)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_stops_beating_when_a_read_hangs_so_the_sweeper_can_requeue(
    client, backend, version, actor, settings, monkeypatch
):
    data = random_bytes(1 * MiB)
    binary = hashing_run(client, version, actor, data)
    Binary.objects.filter(pk=binary.pk).update(hashing_heartbeat_at=None)
    settings.HASHING_STALL_SECONDS = 2
    opened = backend.open
    beats: list[tuple[float, int]] = []
    real_beat = hashing._beat
    started = time.monotonic()

    class Hanging:
        """The store's stream, whose first read brings nothing for 4 s."""

        def __init__(self, stream):
            self.stream = stream
            self.first = True

        def readinto(self, buffer):
            if self.first:
                self.first = False
                time.sleep(4)
            return self.stream.readinto(buffer)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

    def recorded(target, guard, done):
        beats.append((time.monotonic() - started, done))
        real_beat(target, guard, done)

    monkeypatch.setattr(backend, "open", lambda target: Hanging(opened(target)))
    monkeypatch.setattr(hashing, "_beat", recorded)

    assert hashing.verify(binary.pk) == "signable"

    while_hung = [at for at, done in beats if done == 0]
    assert while_hung, beats  # beating until the stall delay...
    assert max(while_hung) < 2.6, beats  # ...and not after it, until the read returned


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_a_redelivered_task_takes_over_a_run_whose_heartbeat_stopped(
    client, backend, version, actor, settings
):
    settings.HASHING_TAKEOVER_SECONDS = 2
    data = random_bytes(2 * MiB)
    binary = hashing_run(client, version, actor, data)  # its heartbeat: just now
    dead_run = binary.hashing_started_at
    started = time.monotonic()

    assert hashing.verify(binary.pk) == "signable"

    waited = time.monotonic() - started
    assert 1.5 <= waited < 2 + hashing.PROGRESS_EVERY + 1.5, waited
    binary.refresh_from_db()
    assert binary.hashing_started_at != dead_run
    assert binary.verified_hash == sha256(data)
    assert moves_of(binary)[1:] == [
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_a_redelivered_task_leaves_a_live_run_alone(client, backend, version, actor, settings):
    settings.HASHING_TAKEOVER_SECONDS = 2
    binary = hashing_run(client, version, actor, random_bytes(1000))
    live_run = binary.hashing_started_at

    with beating(binary, every=0.3):
        assert hashing.verify(binary.pk) == "skipped (hashing)"

    binary.refresh_from_db()
    assert binary.state == State.HASHING
    assert binary.hashing_started_at == live_run
    assert moves_of(binary)[-1] == ("hashable", "hashing")
