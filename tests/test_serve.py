"""`manage.py serve`, what `make run` starts: it stays up under load, and brings back whatever
process dies while the rest goes on serving. Real processes on loopback, a throwaway VAR_DIR.
"""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

from tests.serve_helpers import Served, Soak, wait_for
from tests.server_helpers import ROOT

pytestmark = pytest.mark.slow

SOAK_CLIENTS = 20
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))  # bench/soak.py: 10 minutes


@pytest.fixture
def served(tmp_path):
    home = tmp_path / "home"  # where gunicorn's control socket would go by default
    server = Served(tmp_path, HOME=str(home)).start()
    try:
        yield server
    finally:
        assert server.proc is not None
        everything = psutil.Process(server.proc.pid).children(recursive=True)
        assert server.stop() == 0, server.tail()  # as Ctrl-C: everything stops
        wait_for(lambda: not [p for p in everything if alive(p)], 10, "every process stopped")
    assert not (home / ".gunicorn").exists()  # no control socket, shared by all of its gunicorns


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_it_stays_up_under_clients_and_verifies_every_binary_marked_hashable(served):
    soak = Soak(served.url, served.api_key)
    soak.seed()

    tally = soak.run(SOAK_CLIENTS, SOAK_SECONDS)
    unverified = soak.unverified(timeout=120)

    assert (tally.refused, tally.server_errors, tally.transport_errors) == (0, 0, 0), tally.samples
    assert tally.unexpected == 0, tally.samples
    assert len(tally.marked) > SOAK_CLIENTS, tally  # every client got work done
    assert unverified == {}
    assert "[serve]" not in served.output()  # nothing had to be restarted
    assert "Traceback" not in served.output()


class Prober:
    """Lists binaries every 0.1 s from a thread; keeps every failure."""

    def __init__(self, served: Served):
        self.served = served
        self.failures: list[str] = []
        self.answered = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.served.api_key}"}
        with httpx.Client(base_url=self.served.url, headers=headers, timeout=30) as http:
            while not self.stopping.wait(0.1):
                try:
                    status = http.get("/v1/binaries", params={"limit": 5}).status_code
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if status == 200:
                    self.answered += 1
                else:
                    self.failures.append(f"status {status}")

    def __enter__(self) -> "Prober":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)


def verify_one(served: Served, soak: Soak) -> None:
    """A new binary, uploaded and marked hashable, becomes signable."""
    soak.tally.marked.clear()
    with soak.http() as http:
        soak.cycle(http, random.Random(), f"probe-{time.monotonic_ns()}")
    assert len(soak.tally.marked) == 1, soak.tally.samples
    assert soak.unverified(timeout=60) == {}, served.tail()


def pids(processes: list[psutil.Process]) -> set[int]:
    return {process.pid for process in processes}


def kill(process: psutil.Process) -> float:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    return time.monotonic()


def test_it_brings_back_any_process_that_dies_while_the_rest_keeps_answering(served):
    soak = Soak(served.url, served.api_key)
    soak.seed(versions=1)
    back: dict[str, float] = {}

    with Prober(served) as prober:
        # A web worker: gunicorn's master starts another.
        web = served.child("gunicorn")
        victim = web.children()[0]
        killed = kill(victim)
        wait_for(
            lambda: len(web.children()) == 2 and victim.pid not in pids(web.children()),
            30,
            "gunicorn replaced its worker",
        )
        back["web worker"] = time.monotonic() - killed

        # The pool's processes, all of them (so also one blocked reading its next task): the
        # worker's main process starts others, and they take tasks.
        worker = served.child("celery")
        pool = served.pool()
        for pid in pool:
            killed = kill(psutil.Process(pid))
        wait_for(
            # the pool's processes and beat
            lambda: (
                len(worker.children()) == len(pool) + 1 and not set(pool) & pids(worker.children())
            ),
            30,
            "the worker replaced its pool processes",
        )
        back["pool processes"] = time.monotonic() - killed
        verify_one(served, soak)

        # The worker's main process: serve starts another worker.
        killed = kill(worker)
        wait_for(lambda: served.workers_ready() == 2, 60, "serve restarted the worker")
        back["worker main process"] = time.monotonic() - killed
        verify_one(served, soak)

        # The web server's master: serve starts another; its socket stays open meanwhile.
        master = served.child("gunicorn")
        killed = kill(master)
        wait_for(
            lambda: served.has_child("gunicorn", other_than=master.pid) and served.answers(),
            60,
            "serve restarted the web server",
        )
        back["web server master"] = time.monotonic() - killed
        time.sleep(1)

    print(", ".join(f"{what} back in {seconds:.1f} s" for what, seconds in back.items()))
    assert prober.failures == []
    assert prober.answered > 50
    log = served.output()
    assert f"The worker (pid {worker.pid}) was killed by SIGKILL; restarting it" in log
    assert f"The web server (pid {master.pid}) was killed by SIGKILL; restarting it" in log
    assert max(back.values()) < 30, back


def test_it_bounds_the_size_of_a_request_head(served):
    # httpx sends Host, Accept, Accept-Encoding, Connection and User-Agent: 50 fields in all.
    fields = {f"x-field-{n}": "1" for n in range(45)}

    assert httpx.get(f"{served.url}/login/", headers=fields).status_code == 200
    fields["x-field-45"] = "1"
    assert httpx.get(f"{served.url}/login/", headers=fields).status_code == 431
    # Its time is the proxy's to bound (README, production; docs/nginx.conf).


def test_it_says_which_port_is_taken(tmp_path):
    served = Served(tmp_path)
    with socket.create_server(("127.0.0.1", served.port)):
        done = subprocess.run(
            [sys.executable, "manage.py", "serve"],
            cwd=ROOT,
            env=served.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"CommandError: Cannot listen on 127.0.0.1:{served.port} (Address already in use); "
        "stop what uses that port or set PORT to another."
    )
