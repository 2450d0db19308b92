"""Benchmark part declarations: parts 1..10,000 of one binary, declared in order.

    .venv/bin/python bench/declare.py                      # SQLite, in a temporary folder
    .venv/bin/python bench/declare.py --database-url postgres://postgres@127.0.0.1:5432/test

Each part is 5 MiB (the smallest a part but the last may be) of a binary of parts x 5 MiB;
no bytes are sent. Declarations go through binaries.uploads.part_declare in-process, on the
filesystem backend (the one that also places parts in the object being assembled), each its
own transaction as an API request's would be. Printed: declaration p50/p95 in ms over a
window of parts around parts 1, 1,000 and 10,000, and p50(10,000) / p50(1). Constant-time
declarations keep that ratio near 1.

On PostgreSQL it creates (and afterwards drops) a database named bench_declare on the server
the URL points at; it never touches the database the URL names. SQLite and the stored files
live in a temporary folder, removed afterwards.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "bench_declare"
PART = 5 << 20


def _on_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _bench_database(url: str, *, create: bool) -> None:
    import psycopg

    with psycopg.connect(_on_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        if create:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")


def use_database(url: str | None, folder: str) -> tuple[str, Callable[[], None]]:
    """Point the settings at a throwaway database; returns its kind and its clean-up."""
    os.environ["VAR_DIR"] = folder
    if url and url.startswith(("postgres://", "postgresql://")):
        _bench_database(url, create=True)
        os.environ["DATABASE_URL"] = _on_database(url, BENCH_DB)
        return "postgresql", lambda: _bench_database(url, create=False)
    if url:
        sys.exit(f"--database-url must be a postgres:// URL (SQLite is the default); got {url}")
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    return "sqlite", lambda: None


def new_binary(parts: int):
    from binaries import services
    from binaries.models import Artifact, ArtifactVersion
    from peridio_console.accounts.actors import Actor
    from peridio_console.accounts.models import Organization

    org = Organization.objects.create(name="Bench", slug="bench")
    artifact = Artifact.objects.create(organization=org, name="firmware")
    version = ArtifactVersion.objects.create(organization=org, artifact=artifact, version="1.0.0")
    return services.binary_create(
        artifact_version=version,
        target="universal",
        actor=Actor.system("bench"),
        hash="1" * 64,
        size=parts * PART,
    )


def declare_all(binary, parts: int) -> list[float]:
    """Milliseconds taken by each declaration, part 1 first."""
    from binaries import uploads

    times = []
    for index in range(1, parts + 1):
        began = time.perf_counter()
        uploads.part_declare(
            binary=binary, index=index, hash=f"{index:064x}", size=PART, base_url="http://bench/"
        )
        times.append((time.perf_counter() - began) * 1000)
    return times


def around(times: list[float], part: int, window: int) -> list[float]:
    """The times of the `window` parts nearest part `part` (1-based), within the run."""
    start = min(max(0, part - 1 - window // 2), max(0, len(times) - window))
    return times[start : start + window]


def p(times: list[float], percent: int) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[percent - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="postgres://... (default: SQLite)")
    parser.add_argument("--parts", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=100, help="parts timed around each mark")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="bench-declare-")
    kind, cleanup = use_database(args.database_url, folder)
    os.environ.setdefault("DEBUG", "true")
    os.environ["STORAGE_BACKEND"] = "filesystem"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peridio_console.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.test.utils import setup_test_environment

    setup_test_environment()  # DEBUG off, as in production: no query log kept
    try:
        call_command("migrate", verbosity=0)
        began = time.perf_counter()
        times = declare_all(new_binary(args.parts), args.parts)
        print(f"{kind}: declared {args.parts} parts in {time.perf_counter() - began:.1f} s")
        print(f"{'around part':>12} {'p50 ms':>8} {'p95 ms':>8}")
        marks = sorted({1, min(1_000, args.parts), args.parts})
        for mark in marks:
            window = around(times, mark, args.window)
            print(f"{mark:>12,} {p(window, 50):8.2f} {p(window, 95):8.2f}")
        first, last = (p(around(times, m, args.window), 50) for m in (marks[0], marks[-1]))
        print(f"p50({marks[-1]:,}) / p50(1) = {last / first:.2f}")
    finally:
        connections.close_all()
        cleanup()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
