"""Load: a mix of list, get, create and small part uploads against gunicorn + PostgreSQL.

    .venv/bin/python bench/load.py                           # steps of 1..32 clients, 8 s each
    .venv/bin/python bench/load.py --steps 1,4,16 --seconds 5 --workers 2 --threads 8

Everything on this machine (2 cores shared by server, database and the load driver), loopback
only: a private PostgreSQL database on the local server (created, migrated and dropped here),
gunicorn (gthread) with a throwaway VAR_DIR and the filesystem backend, and httpx clients in
threads. Each client runs a closed loop of:

    40 % GET /v1/binaries?limit=20          list
    30 % GET /v1/binaries/{prn}             get
    15 % POST /v1/binaries                  create (a new target on a version)
    15 % PUT .../parts/1 + PUT the bytes    a small part upload (16 KiB) to a new binary

for --seconds at each step of concurrency (and at most --max-requests in all). Reported per
step: requests per second, p50/p95/p99 latency, errors (any 5xx, transport error or
unexpected status). The figure: the highest throughput sustained with p95 < 200 ms. Goal:
errors = 0 at every step.
"""

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server_helpers import (  # noqa: E402
    Gunicorn,
    bootstrap,
    postgres_problem,
    postgres_server_url,
    private_database,
    server_env,
)

PART = os.urandom(16 * 1024)
PART_HASH = hashlib.sha256(PART).hexdigest()
P95_GOAL = 0.200


@dataclass
class Step:
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(p) - 1]


class Driver:
    def __init__(self, base_url: str, api_key: str, versions: list[str], binaries: list[str]):
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.versions = versions
        self.binaries = binaries
        self.lock = threading.Lock()
        self.counter = 0
        self.total = 0

    def _next(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def _timed(self, step: Step, call, expected: int) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = call()
        except httpx.HTTPError as exc:
            with self.lock:
                step.errors.append(f"{type(exc).__name__}: {exc}")
            return None
        took = time.perf_counter() - started
        with self.lock:
            step.latencies.append(took)
            self.total += 1
            if response.status_code != expected:
                step.errors.append(f"{response.status_code} {response.text[:200]}")
        return response

    def create(self, http: httpx.Client, step: Step, rng: random.Random) -> str | None:
        n = self._next()
        body = {
            "artifact_version_prn": rng.choice(self.versions),
            "target": f"load-{os.getpid()}-{n}",
            "hash": PART_HASH,
            "size": len(PART),
        }
        response = self._timed(step, lambda: http.post("/v1/binaries", json=body), 201)
        return (
            response.json()["binary"]["prn"]
            if response is not None and response.is_success
            else None
        )

    def one(self, http: httpx.Client, step: Step, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.40:
            self._timed(step, lambda: http.get("/v1/binaries", params={"limit": 20}), 200)
        elif roll < 0.70:
            prn = rng.choice(self.binaries)
            self._timed(step, lambda: http.get(f"/v1/binaries/{prn}"), 200)
        elif roll < 0.85:
            self.create(http, step, rng)
        else:
            created = self.create(http, step, rng)
            if created is None:
                return
            body = {"hash": PART_HASH, "size": len(PART)}
            declared = self._timed(
                step, lambda: http.put(f"/v1/binaries/{created}/parts/1", json=body), 201
            )
            if declared is None or declared.status_code != 201:
                return
            url = declared.json()["binary_part"]["presigned_upload_url"]
            # The upload URL is the credential: no API key goes there.
            self._timed(
                step, lambda: http.put(url, content=PART, headers={"Authorization": ""}), 200
            )

    def run_step(self, clients: int, seconds: float, max_requests: int) -> Step:
        step = Step(clients)
        stop = time.monotonic() + seconds
        start_total = self.total

        def client(n: int) -> None:
            rng = random.Random(n * 7919 + clients)
            with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=30) as http:
                while time.monotonic() < stop and self.total - start_total < max_requests:
                    self.one(http, step, rng)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 120)
        step.elapsed = time.monotonic() - started
        return step


def seed(base_url: str, api_key: str, versions: int, binaries: int) -> tuple[list[str], list[str]]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        artifact = http.post("/v1/artifacts", json={"name": "load"}).json()["artifact"]["prn"]
        version_prns = [
            http.post(
                "/v1/artifact_versions", json={"artifact_prn": artifact, "version": f"1.0.{n}"}
            ).json()["artifact_version"]["prn"]
            for n in range(versions)
        ]
        binary_prns = []
        for n in range(binaries):
            response = http.post(
                "/v1/binaries",
                json={
                    "artifact_version_prn": version_prns[n % versions],
                    "target": f"seed-{n}",
                    "hash": PART_HASH,
                    "size": len(PART),
                    "description": f"seeded binary {n}",
                },
            )
            response.raise_for_status()
            binary_prns.append(response.json()["binary"]["prn"])
    return version_prns, binary_prns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="1,2,4,8,16,32", help="client counts, in order")
    parser.add_argument("--seconds", type=float, default=8.0, help="per step")
    parser.add_argument("--max-requests", type=int, default=20000, help="per step, at most")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seed-binaries", type=int, default=500)
    args = parser.parse_args()
    problem = postgres_problem()
    if problem:
        print(f"load: needs PostgreSQL: {problem}")
        return 2
    steps = [int(n) for n in args.steps.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        var_dir = Path(folder)
        with private_database(postgres_server_url(), "bench_load") as database_url:
            env = server_env(var_dir / "var", database_url, LOG_LEVEL="ERROR")
            api_key = bootstrap(env, slug="load")
            gunicorn = Gunicorn(
                env, var_dir / "gunicorn.log", workers=args.workers, threads=args.threads
            ).start()
            try:
                versions, binaries = seed(gunicorn.url, api_key, 20, args.seed_binaries)
                driver = Driver(gunicorn.url, api_key, versions, binaries)
                print(
                    f"load: gunicorn gthread {args.workers}x{args.threads}, PostgreSQL, "
                    f"{len(binaries)} seeded binaries, {os.cpu_count()} cores shared with the "
                    "driver"
                )
                print(
                    f"{'clients':>7} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
                    f" {'requests':>8} {'errors':>6}"
                )
                results = []
                for clients in steps:
                    step = driver.run_step(clients, args.seconds, args.max_requests)
                    results.append(step)
                    print(
                        f"{clients:>7} {step.rps:>8.1f} {step.percentile(50) * 1000:>7.1f} "
                        f"{step.percentile(95) * 1000:>7.1f} {step.percentile(99) * 1000:>7.1f} "
                        f"{len(step.latencies):>8} {len(step.errors):>6}",
                        flush=True,
                    )
                    for error in step.errors[:5]:
                        print(f"        error: {error}")
            finally:
                gunicorn.stop()
    errors = sum(len(s.errors) for s in results)
    within = [s for s in results if s.percentile(95) < P95_GOAL]
    best = max(within, key=lambda s: s.rps) if within else None
    if best:
        print(
            f"sustained: {best.rps:.0f} requests/s with p95 {best.percentile(95) * 1000:.0f} ms "
            f"(< 200 ms) at {best.clients} clients; errors in all steps: {errors}"
        )
    else:
        print(f"sustained: no step kept p95 under 200 ms; errors in all steps: {errors}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
