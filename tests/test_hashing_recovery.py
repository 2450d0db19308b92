"""A worker lost mid-hash costs seconds, not minutes.

A run writes its heartbeat every second while it reads, however slow the reads are. A task
delivered again because its worker died takes over a run whose heartbeat is older than
HASHING_TAKEOVER_SECONDS, and leaves a live run (one that keeps beating) alone. Real workers on
Redis, on RabbitMQ and on the embedded broker (which gives a dead worker's messages back within
GIVE_BACK_EVERY_SECONDS), killed mid-hash (the whole worker, or only its pool child), with a
second worker running: the binary is signable within GOAL_SECONDS of the kill, with one
hashing -> signable move.

`CI=true .venv/bin/pytest tests/test_hashing_recovery.py -k killed -s` prints each recovery time.
"""

import contextlib
import itertools
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator

import psutil
import pytest
from django.db import connection
from django.utils import timezone

from binaries import hashing, moves, tasks
from binaries.models import Binary, BinaryEvent, State
from tests.server_helpers import PrivateRedis
from tests.test_hashing_worker import (  # noqa: F401  (the fixture and its helpers)
    VERIFY_TIMEOUT,
    Workers,
    _forget_publishing_pools,
    binary_stored,
    state_of,
    workers,
)
from tests.upload_helpers import MiB, new_binary, random_bytes, sha256, upload_all

GOAL_SECONDS = 15.0  # from a worker's death to the binary signable


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


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


# --- Real workers killed mid-hash, on Redis and on RabbitMQ ----------------------------------

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
RECOVERY_SIZE = 24 * MiB
RECOVERY_PART = 8 * MiB
HASHING_PACE = 8 * MiB  # bytes per second: about 3 s of hashing, killed after the first second


def unavailable(what: str) -> None:
    if in_ci():
        pytest.fail(f"CI needs {what} for this test")
    pytest.skip(f"needs {what}")


@pytest.fixture(params=["redis", "rabbitmq", "filesystem"])
def broker(request, tmp_path, settings, monkeypatch) -> Iterator[str]:
    """A private redis-server, the RabbitMQ at RABBITMQ_URL (each test has its own queue), or
    the embedded broker under the test's folder (the `workers` fixture sets it up)."""
    redis_server = None
    if request.param == "filesystem":
        url = "filesystem://"
    elif request.param == "redis":
        if PrivateRedis.binary() is None:
            unavailable("redis-server (apt-get install -y redis-server)")
        redis_server = PrivateRedis(tmp_path / "redis.log").start()
        url = redis_server.url
    else:
        from kombu import Connection

        try:
            with Connection(RABBITMQ_URL, connect_timeout=3) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as exc:
            unavailable(f"RabbitMQ at {RABBITMQ_URL} (set RABBITMQ_URL): {exc}")
        url = RABBITMQ_URL
    settings.CELERY_BROKER_URL = url
    monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery prefers it to the settings
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}  # the filesystem's: `workers` sets them
    try:
        yield request.param
    finally:
        if redis_server is not None:
            redis_server.stop()
        _forget_publishing_pools()


@pytest.fixture
def broker_workers(broker, request, settings) -> Iterator[Workers]:
    running: Workers = request.getfixturevalue("workers")
    yield running
    if broker == "rabbitmq":  # a shared server: leave no queue behind
        from kombu import Connection

        running.stop_all()
        with Connection(settings.CELERY_BROKER_URL) as conn:
            conn.default_channel.queue_delete(running.queue)


def verifying_worker(running: Workers):
    """The worker process that received the verification."""
    [owner] = [
        proc
        for proc, log in zip(running.procs, running.logs, strict=True)
        if "binaries.tasks.verify_binary[" in log.read_text(errors="replace")
    ]
    return owner


def pool_child(proc) -> psutil.Process:
    [child] = psutil.Process(proc.pid).children()
    return child


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
@pytest.mark.parametrize("killed", ["worker", "pool child"])
def test_a_worker_killed_mid_hash_is_replaced_within_seconds(
    backend, broker, broker_workers, version, actor, tmp_path, killed
):
    running = broker_workers
    binary, digest = binary_stored(
        version, actor, tmp_path / "firmware.img", RECOVERY_SIZE, RECOVERY_PART
    )
    # Two workers of one process and one pool child each, hashing at a set pace.
    pace = {"HASHING_BYTES_PER_SECOND": str(HASHING_PACE)}
    for _ in range(2):
        running.start(pool="prefork", **pace)

    moves.mark_hashable(binary=binary, actor=actor)

    running.wait_for(
        lambda: Binary.objects.filter(pk=binary.pk, bytes_hashed__gt=0).exists(),
        VERIFY_TIMEOUT,
        "the first progress write",
    )
    owner = verifying_worker(running)
    if killed == "worker":
        running.kill(owner)  # kill -9 of its process group: the worker and its pool child
    else:
        pool_child(owner).send_signal(signal.SIGKILL)
    dead = time.monotonic()
    binary.refresh_from_db()
    assert binary.state == State.HASHING
    assert 0 < binary.bytes_hashed < RECOVERY_SIZE, "not killed mid-hash"
    dead_run = binary.hashing_started_at

    running.wait_for(lambda: state_of(binary) == State.SIGNABLE, 60, "signable again")

    recovery = time.monotonic() - dead
    print(f"\nrecovery on {broker}, {killed} killed mid-hash: {recovery:.1f} s")
    assert recovery <= GOAL_SECONDS, f"{recovery:.1f} s\n{running.output()}"
    binary.refresh_from_db()
    assert binary.verified_hash == digest
    assert binary.bytes_hashed == RECOVERY_SIZE
    assert binary.hashing_started_at != dead_run  # taken over
    recorded = Counter(moves_of(binary))
    assert recorded[("hashing", "signable")] == 1, recorded
    assert recorded[("hashable", "hashing")] == 1, recorded
    assert not BinaryEvent.objects.filter(binary=binary, details={"requeued": True}).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_verification_longer_than_the_redis_lease_is_delivered_once(
    backend, broker, broker_workers, version, actor, tmp_path, settings
):
    """Redis delivers a message again when its lease (visibility_timeout) runs out: the live
    worker renews it, so a second worker standing by never receives it."""
    running = broker_workers
    binary, _ = binary_stored(
        version, actor, tmp_path / "firmware.img", RECOVERY_SIZE, RECOVERY_PART
    )
    lease = "3"  # seconds; the hashing takes about 4 times as long
    pace = {"HASHING_BYTES_PER_SECOND": str(2 * MiB), "CELERY_VISIBILITY_TIMEOUT": lease}
    for _ in range(2):
        running.start(pool="prefork", **pace)

    moves.mark_hashable(binary=binary, actor=actor)

    running.wait_for(lambda: state_of(binary) == State.SIGNABLE, 60, "signable")
    # The task logs its success after the move commits: wait for that line, not the state.
    running.wait_for(lambda: "'signable'" in running.output(), 30, "the task's success logged")
    time.sleep(int(lease))  # time for a duplicate delivery's log line to appear, had there been one
    output = running.output()
    assert output.count("binaries.tasks.verify_binary[") == 2, output  # received, succeeded
    assert Counter(moves_of(binary))[("hashable", "hashing")] == 1
