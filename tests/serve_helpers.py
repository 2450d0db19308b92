"""`manage.py serve`, what `make run` starts, on a throwaway VAR_DIR and a free loopback port
(embedded defaults: SQLite, the filesystem broker and backend), and the clients that soak it
(bench/soak.py, tests/test_serve.py).

Each soak client runs a closed loop: create a binary, declare its part, upload the bytes, mark
it hashable; one time in three reset it at once (racing its verification) and upload and mark
it again; list. Every binary a client last marked hashable must end signable.
"""

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from tests.server_helpers import ROOT, bootstrap, free_port, server_env

STATE_HASHABLE = {"state": "hashable"}
STATE_UPLOADABLE = {"state": "uploadable"}


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until `condition` held; AssertionError naming `what` after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)
    return time.monotonic() - started


class Served:
    """`manage.py serve` in a session of its own; stopped as Ctrl-C stops it."""

    def __init__(self, folder: Path, **extra: str):
        self.var_dir = folder / "var"
        self.log = folder / "serve.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = server_env(
            self.var_dir,
            f"sqlite:///{self.var_dir / 'db.sqlite3'}",
            PORT=str(self.port),
            CELERY_TASK_ALWAYS_EAGER="false",
            **extra,
        )
        self.api_key = ""
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "Served":
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.api_key = bootstrap(self.env, slug="soak")
        with open(self.log, "ab") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: self.answers() and self.workers_ready() == 1, timeout, self.tail())
        return self

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/login/", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def workers_ready(self) -> int:
        """How many times a Celery worker said it was ready."""
        return self.output().count(" ready.")

    def child(self, program: str) -> psutil.Process:
        """The web server's master (program "gunicorn") or the worker's main process
        ("celery") that serve started last."""
        assert self.proc is not None
        for process in psutil.Process(self.proc.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if any(part.endswith(f"/{program}") for part in process.cmdline()[:2]):
                    return process
        raise LookupError(f"serve has no {program} child:\n{self.tail()}")

    def has_child(self, program: str, other_than: int) -> bool:
        try:
            return self.child(program).pid != other_than
        except LookupError:
            return False

    def pool(self) -> list[int]:
        """The worker's pool processes (beat is a child of the worker's main process too)."""
        inspect = ["inspect", "stats", "--timeout", "3", "--json"]
        done = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "peridio_console", *inspect],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        replies = json.loads(done.stdout.strip().splitlines()[-1])
        (stats,) = replies.values()
        return stats["pool"]["processes"]

    def stop(self, timeout: float = 60) -> int | None:
        """Ctrl-C; the exit status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.kill(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            return None


@dataclass
class Tally:
    requests: int = 0
    refused: int = 0  # connection refused
    server_errors: int = 0  # 5xx
    transport_errors: int = 0  # timed out, reset or closed before an answer
    unexpected: int = 0  # any other status than the one expected
    samples: list[str] = field(default_factory=list)
    marked: dict[str, str] = field(default_factory=dict)  # prn -> hash, last marked hashable
    resets: int = 0


class Soak:
    """Clients against one server; see the module's docstring for what each does."""

    def __init__(self, url: str, api_key: str):
        self.url = url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.tally = Tally()
        self.lock = threading.Lock()
        self.versions: list[str] = []

    def seed(self, versions: int = 4) -> None:
        with self.http() as http:
            response = http.post("/v1/artifacts", json={"name": "soak"})
            response.raise_for_status()
            artifact = response.json()["artifact"]["prn"]
            for n in range(versions):
                response = http.post(
                    "/v1/artifact_versions", json={"artifact_prn": artifact, "version": f"1.{n}"}
                )
                response.raise_for_status()
                self.versions.append(response.json()["artifact_version"]["prn"])

    def _call(self, http: httpx.Client, method: str, url: str, expected: int, **kwargs):
        """The response when it has the expected status, else None (and counted)."""
        problem = None
        try:
            response = http.request(method, url, **kwargs)
        except httpx.ConnectError as exc:
            kind, problem = "refused", f"{method} {url}: {exc}"
        except httpx.HTTPError as exc:
            kind, problem = "transport_errors", f"{method} {url}: {type(exc).__name__} {exc}"
        else:
            if response.status_code == expected:
                kind = ""
            else:
                kind = "server_errors" if response.status_code >= 500 else "unexpected"
                problem = f"{method} {url}: {response.status_code} {response.text[:300]}"
        with self.lock:
            self.tally.requests += 1
            if kind:
                setattr(self.tally, kind, getattr(self.tally, kind) + 1)
                if len(self.tally.samples) < 20:
                    self.tally.samples.append(problem or "")
        return None if kind else response

    def _upload_and_mark(self, http: httpx.Client, prn: str, content: bytes, digest: str) -> bool:
        body = {"hash": digest, "size": len(content)}
        declared = self._call(http, "PUT", f"/v1/binaries/{prn}/parts/1", 201, json=body)
        if declared is None:
            return False
        url = declared.json()["binary_part"]["presigned_upload_url"]
        # The upload URL is the credential: no API key goes there.
        if self._call(http, "PUT", url, 200, content=content, headers={"Authorization": ""}):
            marked = self._call(http, "PATCH", f"/v1/binaries/{prn}", 200, json=STATE_HASHABLE)
            if marked is not None:
                with self.lock:
                    self.tally.marked[prn] = digest
                return True
        return False

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60)

    def cycle(self, http: httpx.Client, rng: random.Random, target: str) -> None:
        """One round of a client (see the module's docstring)."""
        content = rng.randbytes(rng.randint(1, 256) * 1024)
        digest = hashlib.sha256(content).hexdigest()
        body = {
            "artifact_version_prn": rng.choice(self.versions),
            "target": target,
            "hash": digest,
            "size": len(content),
        }
        created = self._call(http, "POST", "/v1/binaries", 201, json=body)
        if created is not None:
            prn = created.json()["binary"]["prn"]
            if self._upload_and_mark(http, prn, content, digest) and rng.random() < 1 / 3:
                reset = self._call(http, "PATCH", f"/v1/binaries/{prn}", 200, json=STATE_UPLOADABLE)
                if reset is not None:
                    with self.lock:
                        self.tally.marked.pop(prn, None)
                        self.tally.resets += 1
                    self._upload_and_mark(http, prn, content, digest)
        self._call(http, "GET", "/v1/binaries", 200, params={"limit": 20})

    def client(self, n: int, stop_at: float) -> None:
        rng = random.Random(n)
        with self.http() as http:
            i = 0
            while time.monotonic() < stop_at:
                self.cycle(http, rng, f"soak-{n}-{i}")
                i += 1

    def run(self, clients: int, seconds: float) -> Tally:
        stop_at = time.monotonic() + seconds
        threads = [
            threading.Thread(target=self.client, args=(n, stop_at), daemon=True)
            for n in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 300)
        return self.tally

    def unverified(self, timeout: float) -> dict[str, str]:
        """The binaries marked hashable that are not signable after `timeout` (prn -> state)."""
        pending = dict.fromkeys(self.tally.marked, "")
        deadline = time.monotonic() + timeout
        with self.http() as http:
            while pending:
                for prn in list(pending):
                    binary = http.get(f"/v1/binaries/{prn}").json()["binary"]
                    if (
                        binary["state"] == "signable"
                        and binary["hash"] == f"sha256:{self.tally.marked[prn]}"
                    ):
                        del pending[prn]
                    else:
                        pending[prn] = binary["state"]
                if not pending or time.monotonic() > deadline:
                    break
                time.sleep(1)
        return pending
