"""Soak: `make run` (manage.py serve: gunicorn, a Celery worker with beat, SQLite, the
filesystem broker and backend) under clients that create, upload, mark hashable, reset and
list, for minutes on end.

    .venv/bin/python bench/soak.py                          # 20 clients, 10 minutes
    .venv/bin/python bench/soak.py --clients 5 --seconds 60

A throwaway VAR_DIR, a free loopback port. Each client's loop is in tests/serve_helpers.py.
Reported: requests, refused connections, 5xx, other transport errors and unexpected statuses,
binaries marked hashable and how many of them were verified (signable, their hash) within
--settle seconds after the clients stop, the lines serve wrote about restarts, and the
machine's 1-minute load average (sampled every 10 s while the clients run: the cores may be
shared with other work). Goal: 0 refused, 0 5xx, every binary marked hashable verified, no
restart.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.serve_helpers import Served, Soak  # noqa: E402


def sample_load(every: float, stop: threading.Event, into: list[float]) -> None:
    while not stop.wait(every):
        into.append(os.getloadavg()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--settle", type=float, default=180.0, help="to finish verifying")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as folder:
        served = Served(Path(folder)).start()
        try:
            soak = Soak(served.url, served.api_key)
            soak.seed()
            print(
                f"soak: manage.py serve on {served.url}, {args.clients} clients for "
                f"{args.seconds:.0f} s, {os.cpu_count()} cores shared with the clients",
                flush=True,
            )
            loads: list[float] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample_load, args=(10, stop, loads), daemon=True)
            sampler.start()
            started = time.monotonic()
            tally = soak.run(args.clients, args.seconds)
            elapsed = time.monotonic() - started
            stop.set()
            settled = time.monotonic()
            unverified = soak.unverified(args.settle)
            settled = time.monotonic() - settled
            restarts = [line for line in served.output().splitlines() if "[serve]" in line]
        finally:
            status = served.stop()
    marked = len(tally.marked)
    print(
        f"requests {tally.requests} in {elapsed:.0f} s ({tally.requests / elapsed:.1f}/s); "
        f"refused {tally.refused}; 5xx {tally.server_errors}; "
        f"other transport errors {tally.transport_errors}; unexpected {tally.unexpected}"
    )
    print(
        f"binaries marked hashable {marked} (after {tally.resets} resets), verified "
        f"{marked - len(unverified)} (checked {settled:.0f} s after the clients stopped); "
        f"serve stopped with status {status}"
    )
    if loads:
        print(
            f"load average (1 min) while the clients ran: min {min(loads):.1f}, "
            f"mean {sum(loads) / len(loads):.1f}, max {max(loads):.1f} on {os.cpu_count()} cores"
        )
    for sample in tally.samples[:10]:
        print(f"    {sample}")
    for prn, state in list(unverified.items())[:10]:
        print(f"    unverified: {prn} ({state})")
    for line in restarts:
        print(f"    {line}")
    failed = tally.refused or tally.server_errors or unverified or restarts
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
