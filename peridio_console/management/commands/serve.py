"""Run the web server and a Celery worker (with beat) together, and keep both running.

Each runs in a process group of its own. Whenever one exits, whatever the reason or status,
what is left of its group is stopped and it is started again, with a line on stderr, while
the other goes on serving: at once after a long run, after a pause that doubles while it keeps
dying within seconds. This process owns the listening socket and hands it to every gunicorn it
starts (fd://): while the web server restarts, new connections wait in the backlog rather than
being refused. Ctrl-C or SIGTERM stops both.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

#: A child that ran this long is restarted at once; one that dies sooner waits, 1 s then more.
HEALTHY_SECONDS = 30.0
MAX_PAUSE_SECONDS = 30.0
#: How long the children get to stop on Ctrl-C before they are killed.
STOP_SECONDS = 15.0


def signal_group(group: int, signum: int) -> bool:
    """Signal a process group; False when nothing of it is left."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def ended(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


class Child:
    """One supervised command and the process groups it has left behind."""

    def __init__(self, name: str, command: list[str], pass_fds: tuple[int, ...] = ()):
        self.name = name
        self.command = command
        self.pass_fds = pass_fds
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.pause = 0.0
        self.restart_at: float | None = None
        self.leftovers: list[int] = []  # groups whose leader exited, told to stop

    def start(self) -> None:
        # A session of its own: the terminal's Ctrl-C reaches us, and we stop each in order.
        self.proc = subprocess.Popen(self.command, start_new_session=True, pass_fds=self.pass_fds)
        self.started = time.monotonic()
        self.restart_at = None

    def watch(self, say: Callable[[str], None]) -> None:
        """Start the child again if it has exited (once its pause is over)."""
        assert self.proc is not None
        self.leftovers = [group for group in self.leftovers if signal_group(group, 0)]
        now = time.monotonic()
        if self.restart_at is None:
            returncode = self.proc.poll()
            if returncode is None:
                return
            # Its pool and beat, or gunicorn workers it orphaned: they would run on unwatched.
            if signal_group(self.proc.pid, signal.SIGTERM):
                self.leftovers.append(self.proc.pid)
            young = now - self.started < HEALTHY_SECONDS
            self.pause = min(max(2 * self.pause, 1.0), MAX_PAUSE_SECONDS) if young else 0.0
            self.restart_at = now + self.pause
            when = f" in {self.pause:.0f} s" if self.pause else ""
            say(f"The {self.name} (pid {self.proc.pid}) {ended(returncode)}; restarting it{when}.")
        if now >= self.restart_at:
            self.start()
            say(f"Restarted the {self.name} (pid {self.proc.pid}).")

    def stop(self) -> None:
        for group in self.leftovers:
            signal_group(group, signal.SIGTERM)
        if self.restart_at is None and self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # the leader stops its own workers gracefully

    def kill_after(self, deadline: float) -> None:
        if self.proc is not None and self.restart_at is None:
            try:
                self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for group in self.leftovers:
            signal_group(group, signal.SIGKILL)


class Command(BaseCommand):
    help = (
        "Start gunicorn and a Celery worker with beat, restart either when it exits; "
        "stop both on Ctrl-C or SIGTERM."
    )

    def handle(self, *args, **options) -> None:
        try:
            listener = socket.create_server(("127.0.0.1", settings.PORT), backlog=2048)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise CommandError(
                f"Cannot listen on 127.0.0.1:{settings.PORT} ({reason}); "
                "stop what uses that port or set PORT to another."
            ) from exc
        bin_dir = os.path.dirname(sys.executable)
        web = [
            os.path.join(bin_dir, "gunicorn"),
            "peridio_console.wsgi",
            "--bind",
            f"fd://{listener.fileno()}",
            "--worker-class",
            "gthread",
            "--workers",
            os.environ.get("WEB_CONCURRENCY", "2"),
            "--threads",
            os.environ.get("WEB_THREADS", "4"),
            # gthread's timeout watches each worker's own loop, not a request: a multi-GiB part
            # upload is never cut off by it.
            "--timeout",
            "3600",
            # gunicorn has no deadline for reading a request's head; these bound its size, and
            # a buffering proxy bounds its time in production (README).
            "--limit-request-line",
            "4094",
            "--limit-request-fields",
            "50",
            "--limit-request-field_size",
            "8190",
            "--keep-alive",
            "5",
            # Nothing here uses the control socket, whose default path every gunicorn of this
            # user shares (~/.gunicorn/gunicorn.ctl).
            "--no-control-socket",
            "--access-logfile",
            "-",
        ]
        worker = [
            os.path.join(bin_dir, "celery"),
            "-A",
            "peridio_console",
            "worker",
            "--beat",
            "--loglevel",
            "INFO",
            "--concurrency",
            os.environ.get("CELERY_CONCURRENCY", "3"),
        ]
        children = [
            Child("web server", web, pass_fds=(listener.fileno(),)),
            Child("worker", worker),
        ]
        stopping = False

        def stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            for child in children:
                child.start()
            while not stopping:
                for child in children:
                    child.watch(self.say)
                time.sleep(0.3)
        finally:
            for child in children:
                child.stop()
            deadline = time.monotonic() + STOP_SECONDS
            for child in children:
                child.kill_after(deadline)
            with contextlib.suppress(OSError):
                listener.close()
        self.stdout.write("Stopped the web server and the worker.")

    def say(self, line: str) -> None:
        self.stderr.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S %z')}] [serve] {line}")
