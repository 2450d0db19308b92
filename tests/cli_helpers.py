"""A whole Peridio Console for the `peridio` command line tests: gunicorn (gthread) and a real
Celery worker as subprocesses, on a private VAR_DIR, database, broker and storage, migrated and
given an organization and an API key with the management commands. Plus a small HTTP proxy
that counts, fails, drops or holds requests on their way to the server.

The database is SQLite in the stack's folder, or, when the suite runs on PostgreSQL
(DATABASE_URL=postgres://...), a database of its own on that server, dropped afterwards. The
broker is always the filesystem transport under the stack's VAR_DIR, so no other worker can
take its tasks.
"""

import contextlib
import hashlib
import http.server
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PERIDIO = str(BIN / "peridio")
MiB = 1 << 20
START_TIMEOUT = 90
GUIDE = (
    ROOT.parent / "shared" / "spec" / "binaries-guide.txt",
    ROOT / "spec" / "binaries-guide.txt",
)


def guide_text() -> str:
    for path in GUIDE:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError("binaries-guide.txt (spec/ beside DESIGN.md)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(4 * MiB, left))
            out.write(block)
            left -= len(block)
    return path


def _private_database(folder: Path) -> tuple[str, Callable[[], None]]:
    outer = os.environ.get("DATABASE_URL", "")
    if not outer.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{folder / 'db.sqlite3'}", lambda: None
    import psycopg

    parts = urlsplit(outer)
    name = f"{parts.path.lstrip('/') or 'peridio'}_cli_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


class Stack:
    """gunicorn + a Celery worker on a private VAR_DIR; see the module docstring."""

    def __init__(self, folder: Path, storage: dict[str, str] | None = None, *, debug: bool = True):
        self.folder = folder
        self.debug = debug
        self.var = folder / "var"
        self.var.mkdir(parents=True, exist_ok=True)
        self.storage = storage or {"STORAGE_BACKEND": "filesystem"}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.drop_database: Callable[[], None] = lambda: None
        self.api_key = ""

    def server_env(self) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "CELERY_", "PERIDIO_", "STORAGE_", "DATABASE_"))
        }
        keep.update(
            DJANGO_SETTINGS_MODULE="peridio_console.settings",
            DEBUG="true" if self.debug else "false",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            VAR_DIR=str(self.var),
            DATABASE_URL=self.database_url,
            SECRET_KEY=self.secret_key,
            CELERY_TASK_ALWAYS_EAGER="false",
            CELERY_BROKER_URL="filesystem://",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            **self.storage,
        )
        if not self.debug:
            keep["SECURE_SSL_REDIRECT"] = "false"  # plain HTTP on loopback
        return keep

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.server_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self) -> "Stack":
        self.secret_key = secrets.token_urlsafe(50)
        self.database_url, self.drop_database = _private_database(self.folder)
        self.manage("migrate", "--noinput", "-v", "0")
        created = self.manage("create_org", "CLI Tests", "--admin", "cli", "--password", "x" * 24)
        slug = re.search(r"\(slug ([^,]+),", created)
        assert slug, created
        self.api_key = (
            self.manage("create_api_key", "--org", slug.group(1), "--user", "cli", "--name", "cli")
            .strip()
            .splitlines()[-1]
        )
        web_log = open(self.var / "gunicorn.log", "wb")  # noqa: SIM115 - closed in stop()
        worker_log = open(self.var / "worker.log", "wb")  # noqa: SIM115
        self.logs = [web_log, worker_log]
        self.procs.append(
            subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "peridio_console.wsgi",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--worker-class",
                    "gthread",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--timeout",
                    "120",
                    "--access-logfile",
                    str(self.var / "access.log"),
                ],
                cwd=ROOT,
                env=self.server_env(),
                stdout=web_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        self.procs.append(
            subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "peridio_console",
                    "worker",
                    "--pool",
                    "solo",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "INFO",
                ],
                cwd=ROOT,
                env=self.server_env(),
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self._check_alive()
            worker_ready = b" ready." in (self.var / "worker.log").read_bytes()
            try:
                web_ready = httpx.get(self.url + "/v1/binaries", timeout=5).status_code == 401
            except httpx.TransportError:
                web_ready = False
            if worker_ready and web_ready:
                return self
            assert time.monotonic() < deadline, f"the stack did not start\n{self.output()}"
            time.sleep(0.2)

    def _check_alive(self) -> None:
        for proc in self.procs:
            assert proc.poll() is None, f"{proc.args!r} exited\n{self.output()}"

    def output(self) -> str:
        texts = []
        for name in ("gunicorn.log", "worker.log"):
            path = self.var / name
            if path.exists():
                texts.append(f"--- {name}\n{path.read_text(errors='replace')[-5000:]}")
        return "\n".join(texts)

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for handle in getattr(self, "logs", []):
            handle.close()
        self.drop_database()

    # --- Clients ----------------------------------------------------------------------

    def cli_env(self, base_url: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.folder / "home"),
            "PERIDIO_CONFIG_DIR": str(self.folder / "config"),
            "PERIDIO_API_KEY": self.api_key,
            "PERIDIO_BASE_URL": base_url or self.url,
            "LANG": "C.UTF-8",
        }
        env.update(extra)
        return env

    def peridio(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PERIDIO, *args],
            cwd=cwd or self.folder,
            env=env or self.cli_env(),
            stdin=subprocess.DEVNULL,  # no terminal: nothing may prompt
            capture_output=True,
            text=True,
            timeout=300,
        )

    def bash(
        self, script: str, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", script],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            env=env or self.cli_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/v1",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=60,
        )

    def prn_of(self, *args: str) -> str:
        done = self.peridio(*args, "--output", "prn")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def new_version(self, name: str | None = None) -> str:
        artifact = self.prn_of("artifacts", "create", "--name", name or f"fw-{uuid.uuid4().hex}")
        return self.prn_of(
            "artifact-versions", "create", "--artifact-prn", artifact, "--version", "1.0.0"
        )

    def binary(self, prn: str) -> dict[str, Any]:
        with self.api() as client:
            answer = client.get(f"/binaries/{prn}")
        assert answer.status_code == 200, answer.text
        return answer.json()["binary"]

    def wait_state(self, prn: str, states: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            binary = self.binary(prn)
            if binary["state"] in states:
                return binary
            assert time.monotonic() < deadline, f"{prn} stayed {binary['state']}\n{self.output()}"
            time.sleep(0.2)

    def upload_puts(self) -> int:
        """PUTs the server received on part upload URLs (its access log)."""
        log = self.var / "access.log"
        return log.read_text().count('"PUT /transfer/parts/') if log.exists() else 0


@contextlib.contextmanager
def running_stack(folder: Path, storage: dict[str, str] | None = None) -> Iterator[Stack]:
    stack = Stack(folder, storage)
    try:
        yield stack.start()
    finally:
        stack.stop()


# --- A proxy that counts and misbehaves ----------------------------------------------------

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class Proxy:
    """Forwards HTTP/1.1 to the stack, keeping the Host header (so the upload URLs the server
    builds point back at the proxy). `rule(method, path, n)` decides per request, where n
    counts earlier requests of the same method and kind ('upload' or 'api'): "forward",
    an int (answer that status), "drop" (close without answering), "hold" (wait until
    release(), then drop) or ("stall", n) (forward the answer's head and its first n bytes,
    then wait until release() and drop)."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.rule: Callable[[str, str, int], Any] = lambda method, path, n: "forward"
        self.counts: dict[tuple[str, str], int] = {}
        self.forwarded: list[tuple[str, str, int]] = []
        self.held = 0
        self.gate = threading.Event()
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = "upload" if self.path.startswith("/transfer/parts/") else "api"
                with proxy.lock:
                    n = proxy.counts.get((self.command, kind), 0)
                    proxy.counts[(self.command, kind)] = n + 1
                action = proxy.rule(self.command, self.path, n)
                if action == "hold":
                    with proxy.lock:
                        proxy.held += 1
                    proxy.gate.wait(120)
                    action = "drop"
                if action == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(action, int):
                    payload = b'{"error": {"code": "proxy", "message": "injected", "field": null}}'
                    self.send_response(action)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                with httpx.Client(timeout=120) as client:
                    answer = client.request(
                        self.command, proxy.upstream + self.path, headers=headers, content=body
                    )
                with proxy.lock:
                    proxy.forwarded.append((self.command, self.path, answer.status_code))
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_BY_HOP | {"content-length", "content-encoding"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if isinstance(action, tuple) and action[0] == "stall":
                    self.wfile.write(answer.content[: action[1]])
                    self.wfile.flush()
                    with proxy.lock:
                        proxy.held += 1
                    proxy.gate.wait(120)
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(answer.content)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Proxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def uploads_forwarded(self) -> int:
        with self.lock:
            return sum(
                1 for method, path, _ in self.forwarded if path.startswith("/transfer/parts/")
            )


def one_error_line(done: subprocess.CompletedProcess, code: int) -> str:
    """The one line a failed command printed on stderr, after checking its exit status."""
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def in_terminal(
    args: list[str], env: dict[str, str], columns: int = 60, timeout: float = 300
) -> tuple[int, str]:
    """Run a command with stdin, stdout and stderr on a pseudo-terminal of the given width;
    its exit status and everything it wrote (carriage returns and escapes included)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def create_args(version: str, path: Any, *extra: str) -> list[str]:
    """`peridio binaries create` of a file for target universal (the all-in-one form)."""
    return [
        "binaries", "create", "--artifact-version-prn", version, "--target", "universal",
        "--content-path", str(path), *extra,
    ]  # fmt: skip
