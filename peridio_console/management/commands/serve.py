"""Run the web server and a Celery worker (with beat) together; Ctrl-C stops both."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start gunicorn and a Celery worker with beat; stop both on Ctrl-C or SIGTERM."

    def handle(self, *args, **options) -> None:
        bin_dir = os.path.dirname(sys.executable)
        web = [
            os.path.join(bin_dir, "gunicorn"),
            "peridio_console.wsgi",
            "--bind",
            f"127.0.0.1:{settings.PORT}",
            # Threaded workers and a long timeout: a multi-GiB part upload must not be cut off.
            "--worker-class",
            "gthread",
            "--workers",
            os.environ.get("WEB_CONCURRENCY", "2"),
            "--threads",
            "8",
            "--timeout",
            "3600",
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
            os.environ.get("CELERY_CONCURRENCY", "2"),
        ]
        # Own process groups: the terminal's Ctrl-C reaches us, and we stop each group in order.
        children = [subprocess.Popen(cmd, start_new_session=True) for cmd in (web, worker)]
        stopping = False

        def stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(child.poll() is None for child in children):
                time.sleep(0.3)
        finally:
            for child in children:
                if child.poll() is None:  # the leader stops its own workers gracefully
                    os.kill(child.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
        self.stdout.write("Stopped the web server and the worker.")
