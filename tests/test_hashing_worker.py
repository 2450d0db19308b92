"""Verification by real Celery worker processes, on the test's own database and broker.

A worker is `celery -A peridio_console worker` in a process group of its own, its environment
pointing at this test's database (the pytest-django test database: SQLite file or PostgreSQL),
at the broker this run uses (the filesystem transport under the worker's VAR_DIR, or
CELERY_BROKER_URL such as Redis) and at the same storage. Each test has a queue of its own, so
runs sharing a broker never take each other's messages.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from kombu import pools
from kombu.utils.collections import eqhash

from binaries import moves, services, tasks, uploads
from binaries.models import Binary, BinaryEvent, PartState, State
from binaries.storage import tokens
from peridio_console.celery import app
from tests.upload_helpers import MiB, new_binary, random_bytes, sha256, upload_all

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

READY_TIMEOUT = 60  # seconds for a worker to start
VERIFY_TIMEOUT = 60  # seconds for a queued verification to finish


def _forget_publishing_pools(close: bool = False) -> None:
    """The app keeps the connection and producer pools of the broker settings it first
    published with; forget them so the next publish follows the current settings.

    `close` also closes (and unregisters) kombu's pools for the current settings: only for
    settings of this test alone, since kombu shares pools between equal settings.
    """
    if close:
        with app.connection_for_write() as conn:
            key = eqhash(conn)
        for group in (pools.producers, pools.connections):
            if key in group:
                dict.pop(group, key).force_close_all()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def database_url() -> str:
    """This test's database, as the worker's DATABASE_URL."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        assert Path(db["NAME"]).is_file(), db["NAME"]  # a file, never :memory:
        return f"sqlite:///{db['NAME']}"
    assert db["ENGINE"] == "django.db.backends.postgresql", db["ENGINE"]
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = db["HOST"] or "localhost"
    port = db["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{quote(db['NAME'], safe='')}"


def storage_env(settings) -> dict[str, str]:
    if settings.STORAGE_BACKEND == "filesystem":
        return {"STORAGE_BACKEND": "filesystem"}
    options = settings.STORAGES["binaries"]["OPTIONS"]
    return {
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": options["bucket_name"],
        "AWS_S3_ENDPOINT_URL": options["endpoint_url"],
        "AWS_S3_REGION_NAME": options["region_name"],
        "AWS_ACCESS_KEY_ID": options["access_key"],
        "AWS_SECRET_ACCESS_KEY": options["secret_key"],
        "AWS_S3_ADDRESSING_STYLE": options["addressing_style"],
    }


def _forget_redis_queue(url: str, queue: str) -> None:
    """Best effort: leave nothing of this test's queue in a shared Redis (a killed worker's
    unacknowledged message would otherwise be restored into it an hour later)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{queue}*"):
            client.delete(key)
        client.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        for member in client.smembers("_kombu.binding.celery.pidbox"):
            if queue.encode() in member:
                client.srem("_kombu.binding.celery.pidbox", member)
        for tag, value in client.hscan_iter("unacked"):
            try:
                _message, exchange, routing_key = json.loads(value)
            except (ValueError, TypeError):
                continue
            if queue in (exchange, routing_key):
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()


class Workers:
    """Start, kill and stop worker processes for one test."""

    def __init__(self, settings, var_dir: Path, queue: str):
        self.settings = settings
        self.var_dir = var_dir
        self.queue = queue
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AWS_") and k not in ("STORAGE_BACKEND", "DATABASE_URL")
        }
        env.update(
            DEBUG="true",
            VAR_DIR=str(self.var_dir),
            SECRET_KEY=self.settings.SECRET_KEY,
            DATABASE_URL=database_url(),
            CELERY_BROKER_URL=self.settings.CELERY_BROKER_URL,
            CELERY_TASK_ALWAYS_EAGER="false",
            HASHING_STALL_SECONDS=str(self.settings.HASHING_STALL_SECONDS),
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(storage_env(self.settings))
        env.update(extra)
        return env

    def start(self, pool: str = "solo", **extra_env: str) -> subprocess.Popen:
        n = len(self.procs) + 1
        log = self.var_dir / f"worker-{n}.log"
        with open(log, "wb") as handle:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "peridio_console",
                    "worker",
                    "--pool",
                    pool,
                    "--concurrency",
                    "1",
                    "-Q",
                    self.queue,
                    "--hostname",
                    f"{self.queue}-{n}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "INFO",
                ],
                cwd=self.settings.BASE_DIR,
                env=self.env(**extra_env),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill -9 takes all of it
            )
        self.procs.append(proc)
        self.logs.append(log)
        self.wait_for(lambda: b" ready." in log.read_bytes(), READY_TIMEOUT, f"worker {n} ready")
        return proc

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')}" for log in self.logs)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for proc in self.procs:
                if proc.returncode is None and proc.poll() is not None:
                    pytest.fail(
                        f"a worker exited ({proc.returncode}) waiting for {what}\n{self.output()}"
                    )
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}\n{self.output()}")
            time.sleep(0.1)

    def signal(self, proc: subprocess.Popen, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    def kill(self, proc: subprocess.Popen) -> None:
        self.signal(proc, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.signal(proc, signal.SIGCONT)
                self.signal(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(proc)


@pytest.fixture
def workers(settings, backend, tmp_path, transactional_db):
    """Worker processes sharing this test's database, broker and storage."""
    var_dir = tmp_path.resolve()
    if settings.STORAGE_BACKEND == "filesystem":
        # The backend fixture's folder is where a worker with this VAR_DIR keeps binaries.
        assert Path(settings.BINARIES_ROOT).resolve() == var_dir / "binaries"
    queue = f"hashing-test-{uuid.uuid4().hex[:12]}"
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("filesystem://"):
        # The folders a worker whose VAR_DIR is var_dir reads (see settings.py).
        folders = {"in": var_dir / "celery" / "queue", "control": var_dir / "celery" / "control"}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
            "data_folder_in": str(folders["in"]),
            "data_folder_out": str(folders["in"]),
            "control_folder": str(folders["control"]),
            "store_processed": False,
        }
    # Publish for real, to this test's queue (app.conf reads Django's settings).
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    _forget_publishing_pools()
    assert app.conf.task_always_eager is False
    assert app.conf.task_default_queue == queue
    running = Workers(settings, var_dir, queue)
    try:
        yield running
    finally:
        running.stop_all()
        # A filesystem broker's folders are this test's own; Redis settings are everyone's.
        _forget_publishing_pools(close=broker.startswith("filesystem://"))
        if broker.startswith("redis"):
            _forget_redis_queue(broker, queue)
        shutil.rmtree(var_dir / "binaries", ignore_errors=True)


def state_of(binary: Binary) -> str:
    return Binary.objects.filter(pk=binary.pk).values_list("state", flat=True).get()


def recorded_moves(binary: Binary) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in BinaryEvent.objects.filter(binary=binary)]


def test_a_worker_verifies_uploaded_binaries(client, backend, workers, version, actor):
    good_data = random_bytes(11 * MiB + 5)
    bad_data = random_bytes(5 * MiB)
    good = new_binary(version, actor, good_data, target="aarch64-linux-gnu")
    bad = new_binary(version, actor, random_bytes(len(bad_data)), target="x86_64-linux-gnu")
    upload_all(client, good, good_data)
    upload_all(client, bad, bad_data)
    workers.start()

    moves.mark_hashable(binary=good, actor=actor)  # queued on commit, to the real broker
    moves.mark_hashable(binary=bad, actor=actor)

    def held(binary) -> list[str]:
        return [key for key in backend.listing() if str(binary.uuid) in key]

    # The failed binary's content is deleted once its move back to uploadable has committed,
    # in the worker, a moment after the state can be seen here: wait for both.
    workers.wait_for(
        lambda: (
            state_of(good) == State.SIGNABLE and state_of(bad) == State.UPLOADABLE and not held(bad)
        ),
        VERIFY_TIMEOUT,
        "one binary signable, the other back to uploadable with its content deleted",
    )
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.verified_hash == sha256(good_data)
    assert good.bytes_hashed == len(good_data)
    assert recorded_moves(good)[1:] == [
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
    ]
    assert bad.last_error == (
        f"SHA-256 mismatch: declared sha256:{bad.hash}, stored content is "
        f"sha256:{sha256(bad_data)} ({len(bad_data)} bytes)."
    )
    assert bad.parts.count() == 0
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


def binary_stored(version, actor, source: Path, size: int, part_size: int) -> tuple[Binary, str]:
    """A binary whose parts carry `size` random bytes (written to `source` on the way, which is
    removed again); returns it and its SHA-256."""
    digest, part_hashes = write_random(source, size, part_size)
    binary = services.binary_create(
        artifact_version=version, target="aarch64-linux-gnu", actor=actor, hash=digest, size=size
    )
    store_parts(binary, source, part_size, part_hashes)
    source.unlink()
    return binary, digest


@pytest.fixture
def filesystem_workers(settings, monkeypatch, request) -> Workers:
    """Workers on the embedded (filesystem) broker, which gives a killed worker's messages back
    to the queue once another consumer notices it died: when the next worker starts, or within
    a few seconds by a live one (peridio_console/broker.py; Redis and RabbitMQ:
    tests/test_hashing_recovery.py)."""
    settings.CELERY_BROKER_URL = "filesystem://"
    monkeypatch.setenv("CELERY_BROKER_URL", "filesystem://")  # Celery prefers it to settings
    return request.getfixturevalue("workers")


@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_a_worker_killed_mid_hash_is_taken_over_by_the_next_worker_without_the_sweeper(
    backend, filesystem_workers, version, actor, settings, tmp_path
):
    workers = filesystem_workers
    binary, digest = binary_stored(
        version, actor, tmp_path / "firmware.img", CRASH_SIZE, CRASH_PART
    )
    first = workers.start()
    # Slow the worker down (a slow disk, a busy machine) so that it is still hashing when its
    # first progress write lands, however fast this machine hashes.
    throttle = Throttle(workers, first)
    throttle.start()

    moves.mark_hashable(binary=binary, actor=actor)

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

    # A new worker, as `make run` starts one: it takes the dead worker's task back from the
    # broker when it starts, and takes the run over once its heartbeat has stopped for
    # HASHING_TAKEOVER_SECONDS. The sweeper never has to.
    restarted = time.monotonic()
    workers.start(HASHING_TAKEOVER_SECONDS="2")
    workers.wait_for(lambda: state_of(binary) == State.SIGNABLE, VERIFY_TIMEOUT, "signable")
    recovery = time.monotonic() - restarted
    print(f"\nfilesystem broker, worker killed mid-hash, then started again: {recovery:.1f} s")
    assert "Gave back 1 message(s)" in workers.output()
    binary.refresh_from_db()
    assert binary.verified_hash == digest
    assert binary.bytes_hashed == CRASH_SIZE
    assert binary.hashing_started_at != killed_run  # the new run's
    events = list(BinaryEvent.objects.filter(binary=binary))
    assert [(e.from_state, e.to_state) for e in events] == [
        ("", "uploadable"),
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
    ]
    assert tasks.sweep() == 0
