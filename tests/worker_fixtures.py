"""Real Celery worker processes for the tests that need them: the `workers` fixture (found by
name through `pytest_plugins` in conftest.py) and its helpers.

A worker is `celery -A peridio_console worker` in a process group of its own, its environment
pointing at this test's database (the pytest-django test database: SQLite file or PostgreSQL),
at the broker this run uses (the filesystem transport under the worker's VAR_DIR, or
CELERY_BROKER_URL such as Redis) and at the same storage. Each test has a queue of its own, so
runs sharing a broker never take each other's messages.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from kombu import pools
from kombu.utils.collections import eqhash

from binaries.models import Binary, BinaryEvent
from peridio_console.celery import app

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

    def start(self, **extra_env: str) -> subprocess.Popen:
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
                    "solo",
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


def moves(binary: Binary) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in BinaryEvent.objects.filter(binary=binary)]
