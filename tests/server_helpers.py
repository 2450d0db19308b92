"""Real servers on loopback for the reliability tests and benchmarks: a private PostgreSQL
database on the local server, gunicorn (gthread) in a process group of its own, and a private
redis-server on a free port. Nothing here touches a shared database, queue or Redis.
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- PostgreSQL -----------------------------------------------------------------------------


def postgres_server_url() -> str:
    """The PostgreSQL server to make private databases on: DATABASE_URL's when it names one,
    else the local server (127.0.0.1:5432, user postgres)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = os.environ.get("RELIABILITY_POSTGRES_URL", DEFAULT_POSTGRES)
    return url


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def postgres_problem(url: str | None = None) -> str | None:
    """Why PostgreSQL cannot be used (None when it can)."""
    import psycopg

    url = url or postgres_server_url()
    try:
        with psycopg.connect(with_database(url, "postgres"), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {urlsplit(url).hostname}:{urlsplit(url).port or 5432}: {exc}"
    return None


def require_postgres() -> str:
    """The server URL, or a skip (a failure under CI=true: CI must run these tests)."""
    import pytest

    problem = postgres_problem()
    if problem is None:
        return postgres_server_url()
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs PostgreSQL for this test and it is not reachable: {problem}")
    pytest.skip(f"needs a reachable PostgreSQL (set RELIABILITY_POSTGRES_URL): {problem}")
    raise AssertionError  # unreachable


@contextlib.contextmanager
def private_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database of our own; dropped afterwards. Yields its URL."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = with_database(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Django processes -----------------------------------------------------------------------


def server_env(var_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PYTEST_"))
        and k not in ("STORAGE_BACKEND", "DATABASE_URL", "CELERY_BROKER_URL")
    }
    env.update(
        DEBUG="true",
        VAR_DIR=str(var_dir),
        DATABASE_URL=database_url,
        CELERY_TASK_ALWAYS_EAGER="true",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="peridio_console.settings",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def bootstrap(env: dict[str, str], slug: str = "acme") -> str:
    """Migrate, create an organization with an admin, and return an API key of the admin."""
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    manage(env, "create_org", slug.title(), "--admin", f"{slug}-admin", "--password", "x" * 20)
    return manage(env, "create_api_key", "--org", slug, "--user", f"{slug}-admin").strip()


class Gunicorn:
    """gunicorn peridio_console.wsgi with threaded workers on a free loopback port."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2, threads: int = 8):
        self.env = env
        self.log = log
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "Gunicorn":
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
        with open(self.log, "ab") as handle:
            self.proc = subprocess.Popen(
                [
                    gunicorn,
                    "peridio_console.wsgi",
                    "--worker-class",
                    "gthread",
                    "--workers",
                    str(self.workers),
                    "--threads",
                    str(self.threads),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--timeout",
                    "120",
                    "--graceful-timeout",
                    "5",
                    # Longer than any pause of a test client: a keep-alive connection closed
                    # by the server just as a client reuses it is a reset no test should meet.
                    "--keep-alive",
                    "30",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}):\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/login/", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer in {timeout} s:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# --- Redis ----------------------------------------------------------------------------------


class PrivateRedis:
    """redis-server on a free loopback port, no persistence: never the machine's 6379."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("redis-server")

    def start(self, timeout: float = 20) -> "PrivateRedis":
        import redis

        binary = self.binary()
        assert binary, "redis-server is not installed (apt-get install -y redis-server)"
        assert self.port != 6379
        with open(self.log, "ab") as handle:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return self
            except redis.RedisError as exc:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start: {self.log.read_text()}"
                    ) from exc
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# --- A TCP proxy that can be unplugged ------------------------------------------------------


class FlakyProxy:
    """A loopback TCP proxy to `upstream_port` (moto's S3 server) that can be cut and restored.

    cut() closes the listening socket and resets every open connection, as a crashed or
    unplugged endpoint would: connections in flight fail, new ones are refused. restore()
    listens again on the same port. `rate` throttles the bytes sent back to clients
    (bytes per second), so a test can cut a long read in the middle.
    """

    def __init__(self, upstream_port: int):
        import threading

        self.upstream_port = upstream_port
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.rate: float | None = None
        self.bytes_up = 0  # client -> upstream
        self.bytes_down = 0  # upstream -> client
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.listener: socket.socket | None = None

    def start(self) -> "FlakyProxy":
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    restore = start

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, upstream))
            for src, dst, down in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, down), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if down and self.rate:
                    time.sleep(len(data) / self.rate)
                dst.sendall(data)
                with self.lock:
                    if down:
                        self.bytes_down += len(data)
                    else:
                        self.bytes_up += len(data)
        except OSError:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        import struct

        if self.listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not, and
            # the kernel would go on accepting connections.
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            sockets, self.sockets = list(self.sockets), set()
        for sock in sockets:
            # Linger 0: a reset, as from a dead peer. shutdown() first: the pump threads
            # blocked in recv() hold the socket open, and close() alone would wait for them.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def stop(self) -> None:
        self.cut()
