"""Benchmark the filesystem upload endpoint against a bare WSGI receiver, on this machine.

    .venv/bin/python bench/upload.py                    # 1 GiB, 16 MiB parts, 4 in parallel
    .venv/bin/python bench/upload.py --size-mib 256 --rounds 3

All in one run, in a temporary folder (removed afterwards unless --keep):
- a random file of --size-mib is written, with its SHA-256 and each part's;
- (a) our server: `gunicorn peridio_console.wsgi` (gthread, --workers/--threads) against a
  throwaway VAR_DIR and SQLite database, migrated first; an organization, user and API key made
  with the create_org / create_api_key commands; artifact, version and binary created through
  the API; parts declared through the API when binaries.api.parts is mounted, else through
  binaries.uploads in this process; then the parts PUT to their upload URLs, --parallel at once;
- (b) bench/bare_receiver.py under the same gunicorn settings: read in 1 MiB chunks, SHA-256,
  write to disk; nothing else;
- (b') the same bare receiver fsyncing each body before it answers, as (a) does before it
  records a part valid: the durable floor. (b)'s bytes may never reach the disk at all (the
  files are removed while still in the page cache), so on a disk slower to sync than the
  network is fast, (a)/(b) measures the disk; (a)/(b') measures our code;
- `cp` of the same file;
- peak RSS of each server's processes (gunicorn master + workers), sampled with psutil;
- marking the binary hashable (uploads.mark_hashable: parts checked, upload completed) and
  then verification (hashing.verify) run inline and timed.

Celery is not eager here (CELERY_TASK_ALWAYS_EAGER=false, broker memory://), so completion
does not hash inline. Goals: (a)/(b) <= 1.25; server RSS <= 150 MB. (a)/(b') is printed beside.
"""

import argparse
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_file(path: Path, size: int, part_size: int) -> tuple[str, list[str]]:
    """Random content; returns its SHA-256 and each part's."""
    whole = hashlib.sha256()
    parts: list[str] = []
    with open(path, "wb") as out:
        left = size
        while left > 0:
            block = os.urandom(min(part_size, left))
            whole.update(block)
            parts.append(hashlib.sha256(block).hexdigest())
            out.write(block)
            left -= len(block)
    return whole.hexdigest(), parts


# --- Servers and their memory ------------------------------------------------------------------


@dataclass
class Peak:
    total: int = 0  # RSS of master + workers, summed, at the worst sample
    largest: int = 0  # RSS of the largest single process at any sample
    pss: int = 0  # proportional set size (shared pages split), summed, at the worst sample
    samples: int = 0


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    url: str
    peaks: list[Peak] = field(default_factory=list)

    def processes(self) -> list[psutil.Process]:
        try:
            master = psutil.Process(self.process.pid)
            return [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> list[int]:
        sizes = []
        for proc in self.processes():
            with suppress(psutil.NoSuchProcess):
                sizes.append(proc.memory_info().rss)
        return sizes

    def pss(self) -> int:
        total = 0
        for proc in self.processes():
            with suppress(psutil.NoSuchProcess, AttributeError):
                total += proc.memory_full_info().pss
        return total

    @contextmanager
    def sampling(self, every: float = 0.05) -> Iterator[Peak]:
        peak = Peak()
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                sizes = self.rss()
                if sizes:
                    peak.total = max(peak.total, sum(sizes))
                    peak.largest = max(peak.largest, max(sizes))
                    peak.samples += 1
                    if peak.samples % 5 == 1:  # smaps is slower to read
                        peak.pss = max(peak.pss, self.pss())
                stop.wait(every)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield peak
        finally:
            stop.set()
            thread.join()
            self.peaks.append(peak)


def start_gunicorn(name: str, app: str, env: dict[str, str], args: argparse.Namespace) -> Server:
    port = free_port()
    command = [
        GUNICORN,
        app,
        "--chdir",
        str(ROOT),
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--timeout",
        "600",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    server = Server(name, process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name}: gunicorn exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except OSError:
            time.sleep(0.1)
            continue
        # Connected: wait for the workers too (each one imports the app).
        while len(server.processes()) < 1 + args.workers and time.monotonic() < deadline:
            time.sleep(0.1)
        httpx.get(server.url + "/", timeout=30)  # the first request loads the rest
        return server
    raise SystemExit(f"{name}: gunicorn did not start listening in 60 s")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()  # the master stops its workers
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# --- Sending parts -----------------------------------------------------------------------------


def put_parts(
    urls: list[str], source: Path, part_size: int, size: int, parallel: int
) -> tuple[float, list[dict[str, Any]]]:
    """PUT part i's bytes to urls[i], `parallel` at once; returns (seconds, answers)."""
    local = threading.local()
    fd = os.open(source, os.O_RDONLY)

    def one(index: int) -> dict[str, Any]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=600)
        offset = index * part_size
        body = os.pread(fd, min(part_size, size - offset), offset)
        response = local.client.put(
            urls[index], content=body, headers={"Content-Type": "application/octet-stream"}
        )
        if response.status_code != 200:
            raise SystemExit(f"part {index + 1}: HTTP {response.status_code} {response.text}")
        return response.json()

    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            answers = list(pool.map(one, range(len(urls))))
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
    return elapsed, answers


# --- (a): our server ---------------------------------------------------------------------------


class Ours:
    """The organization, API key and binaries of run (a), and the calls to make them."""

    def __init__(self, server: Server, key: str, slug: str):
        self.server = server
        self.slug = slug
        self.http = httpx.Client(
            base_url=server.url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=600
        )
        answer = self.post("/artifacts", {"name": "bench-firmware"})
        artifact = answer["artifact"]["prn"]
        answer = self.post("/artifact_versions", {"artifact_prn": artifact, "version": "1.0.0"})
        self.version = answer["artifact_version"]["prn"]
        self.parts_api: bool | None = None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code != 201:
            raise SystemExit(f"POST {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def binary(self, target: str, digest: str, size: int) -> str:
        body = {"artifact_version_prn": self.version, "target": target, "hash": digest}
        answer = self.post("/binaries", {**body, "size": size})
        return answer["binary"]["prn"]

    def declare(self, prn: str, hashes: list[str], part_size: int, size: int) -> list[str]:
        """Each part's upload URL: through the API if the parts router is mounted."""
        sizes = [min(part_size, size - i * part_size) for i in range(len(hashes))]
        urls: list[str] = []
        if self.parts_api is not False:
            for index, (digest, length) in enumerate(zip(hashes, sizes, strict=True), start=1):
                response = self.http.put(
                    f"/binaries/{prn}/parts/{index}", json={"hash": digest, "size": length}
                )
                if response.status_code in (403, 404, 405) and index == 1:
                    # Not mounted: /v1's catch-all answers 404 (or 403: it is not CSRF-exempt).
                    self.parts_api = False
                    break
                if response.status_code != 201:
                    raise SystemExit(f"part {index}: HTTP {response.status_code} {response.text}")
                self.parts_api = True
                urls.append(response.json()["binary_part"]["presigned_upload_url"])
            if self.parts_api:
                return urls
        from binaries import selectors, uploads
        from peridio_console.accounts.models import Organization

        organization = Organization.objects.get(slug=self.slug)
        binary = selectors.get_binary(organization, prn)
        for index, (digest, length) in enumerate(zip(hashes, sizes, strict=True), start=1):
            declared = uploads.part_declare(
                binary=binary, index=index, hash=digest, size=length, base_url=self.server.url
            )
            urls.append(declared.upload_url)
        return urls

    def complete_and_verify(self, prn: str) -> tuple[float, float, str, str]:
        """(seconds to mark hashable, seconds to verify, state after, where the bytes are)."""
        from django.contrib.auth import get_user_model

        from binaries import hashing, moves, selectors, storage
        from binaries.models import Binary
        from peridio_console.accounts.actors import Actor
        from peridio_console.accounts.models import Organization

        organization = Organization.objects.get(slug=self.slug)
        binary = selectors.get_binary(organization, prn)
        backend = storage.get()
        in_place = sorted({p.offset is not None for p in binary.parts.all()})
        actor = Actor.for_user(get_user_model().objects.get(username="bench"))
        started = time.perf_counter()
        moves.mark_hashable(binary=binary, actor=actor)
        hashable = time.perf_counter() - started
        started = time.perf_counter()
        outcome = hashing.verify(binary.pk)
        verified = time.perf_counter() - started
        binary = Binary.objects.get(pk=binary.pk)
        where = "in place" if in_place == [True] else f"in place: {in_place}"
        if outcome != "signable":
            raise SystemExit(f"verification: {outcome}: {binary.last_error}")
        if not backend.exists(binary):
            raise SystemExit("the completed object is not in storage")
        return hashable, verified, binary.state, where


def setup_django(env: dict[str, str]) -> tuple[str, str]:
    """Migrate the throwaway database; make the org, user and API key with the commands.
    Returns (API key, organization slug)."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    password = secrets.token_urlsafe(16)
    created = io.StringIO()
    call_command("create_org", "bench", admin="bench", password=password, stdout=created)
    match = re.search(r"\(slug ([^,]+),", created.getvalue())
    if not match:
        raise SystemExit(f"create_org said: {created.getvalue()}")
    slug = match.group(1)
    made = io.StringIO()
    call_command("create_api_key", org=slug, user="bench", name="bench", stdout=made)
    return made.getvalue().strip().splitlines()[-1], slug


# --- Main --------------------------------------------------------------------------------------


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="alternate (b), (a) this often")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    size, part_size = args.size_mib * MiB, args.part_mib * MiB

    work = Path(tempfile.mkdtemp(prefix="peridio-bench-upload-"))
    servers: list[Server] = []
    try:
        source = work / "source.bin"
        started = time.perf_counter()
        digest, hashes = make_file(source, size, part_size)
        print(
            f"file: {args.size_mib} MiB random in {time.perf_counter() - started:.1f} s, "
            f"{len(hashes)} parts of {args.part_mib} MiB, {args.parallel} in parallel; "
            f"gunicorn gthread --workers {args.workers} --threads {args.threads}; "
            f"{os.cpu_count()} CPUs"
        )
        var = work / "var"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "peridio_console.settings",
            "VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback
            "SECURE_COOKIES": "false",
            "STORAGE_BACKEND": "filesystem",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CELERY_BROKER_URL": "memory://",
            "BARE_RECEIVER_DIR": str(work / "bare"),
        }
        key, slug = setup_django(env)
        ours = start_gunicorn("(a) peridio_console.wsgi", "peridio_console.wsgi", env, args)
        servers.append(ours)
        bare = start_gunicorn("(b) bench.bare_receiver", "bench.bare_receiver:app", env, args)
        servers.append(bare)
        durable_env = {
            **env,
            "BARE_RECEIVER_DIR": str(work / "durable"),
            "BARE_RECEIVER_FSYNC": "1",
        }
        durable = start_gunicorn("(b') bare + fsync", "bench.bare_receiver:app", durable_env, args)
        servers.append(durable)
        idle = {s.name: s.rss() for s in servers}
        client = Ours(ours, key, slug)

        # Warm up both (first requests load code, fill pools): one part each, not timed.
        warm = client.binary("bench-warm-up", hashes[0], min(part_size, size))
        put_parts(
            client.declare(warm, hashes[:1], part_size, part_size), source, part_size, part_size, 1
        )
        put_parts([f"{bare.url}/warm-up"], source, part_size, part_size, 1)
        put_parts([f"{durable.url}/warm-up"], source, part_size, part_size, 1)

        times: dict[str, list[float]] = {"a": [], "b": [], "d": []}
        completions: list[tuple[float, float, str, str]] = []
        declare_times: list[float] = []
        for round_number in range(args.rounds):
            os.sync()
            bare_urls = [f"{bare.url}/part-{i + 1}" for i in range(len(hashes))]
            with bare.sampling():
                elapsed, answers = put_parts(bare_urls, source, part_size, size, args.parallel)
            assert [a["sha256"] for a in answers] == hashes, "(b) received other bytes"
            times["b"].append(elapsed)
            shutil.rmtree(work / "bare", ignore_errors=True)

            os.sync()
            durable_urls = [f"{durable.url}/part-{i + 1}" for i in range(len(hashes))]
            with durable.sampling():
                elapsed, answers = put_parts(durable_urls, source, part_size, size, args.parallel)
            assert [a["sha256"] for a in answers] == hashes, "(b') received other bytes"
            times["d"].append(elapsed)
            shutil.rmtree(work / "durable", ignore_errors=True)

            prn = client.binary(f"bench-{round_number}", digest, size)
            started = time.perf_counter()
            urls = client.declare(prn, hashes, part_size, size)
            declare_times.append(time.perf_counter() - started)
            os.sync()
            with ours.sampling():
                elapsed, answers = put_parts(urls, source, part_size, size, args.parallel)
            assert all(a["binary_part"]["state"] == "valid" for a in answers)
            times["a"].append(elapsed)
            completions.append(client.complete_and_verify(prn))

        os.sync()
        copy = work / "copy.bin"
        started = time.perf_counter()
        subprocess.run(["cp", str(source), str(copy)], check=True)
        cp_time = time.perf_counter() - started
        copy.unlink()

        a, b, d = (statistics.median(times[k]) for k in ("a", "b", "d"))
        print(f"parts declared via: {'the API' if client.parts_api else 'binaries.uploads'}")
        print(f"(a) our upload endpoint:  {a:6.2f} s  {size / MiB / a:7.1f} MiB/s  {times['a']}")
        print(f"(b) bare WSGI receiver:   {b:6.2f} s  {size / MiB / b:7.1f} MiB/s  {times['b']}")
        print(f"(b') bare + fsync:        {d:6.2f} s  {size / MiB / d:7.1f} MiB/s  {times['d']}")
        for label, floor, goal in (("(b)", "b", "   (goal <= 1.25)"), ("(b')", "d", "")):
            pairs = [x / y for x, y in zip(times["a"], times[floor], strict=True)]
            print(
                f"(a)/{label} = {a / statistics.median(times[floor]):.3f} of the medians{goal}; "
                f"round by round: {', '.join(f'{r:.2f}' for r in pairs)} "
                f"(median {statistics.median(pairs):.2f})"
            )
        print(f"cp of the same file:      {cp_time:6.2f} s  {size / MiB / cp_time:7.1f} MiB/s")
        print(f"declaring {len(hashes)} parts: {statistics.median(declare_times):.2f} s")
        for hashable, verified, state, where in completions:
            print(
                f"mark hashable (complete, parts {where}): {hashable * 1000:.0f} ms; "
                f"verification (SHA-256 of {size / MiB:.0f} MiB): {verified:.2f} s -> {state}"
            )
        for server in servers:
            total = max(p.total for p in server.peaks)
            largest = max(p.largest for p in server.peaks)
            pss = max(p.pss for p in server.peaks)
            samples = sum(p.samples for p in server.peaks)
            print(
                f"{server.name} RSS: idle {mb(sum(idle[server.name]))} "
                f"({', '.join(mb(r) for r in idle[server.name])}); peak during upload "
                f"{mb(total)} master+workers (PSS {mb(pss)}), largest process {mb(largest)} "
                f"({samples} samples)"
            )
        print(
            json.dumps(
                {"a_s": a, "b_s": b, "durable_s": d, "ratio": a / b, "durable_ratio": a / d}
                | {"cp_s": cp_time}
            )
        )
    finally:
        for server in servers:
            stop(server)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
