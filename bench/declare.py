"""Benchmark part declarations: parts 1..10,000 of one binary, declared in order.

    .venv/bin/python bench/declare.py                      # SQLite, in a temporary folder
    .venv/bin/python bench/declare.py --database-url postgres://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/declare.py --seed               # only the timed parts declared

Each part is 5 MiB (the smallest a part but the last may be) of a binary of parts x 5 MiB;
no bytes are sent. Declarations go through binaries.uploads.part_declare in-process, on the
filesystem backend (the one that also places parts in the object being assembled), each its
own transaction as an API request's would be. Printed: declaration p50/p95 in ms over a
window of parts around parts 1, 1,000 and 10,000, and p50(10,000) / p50(1). Constant-time
declarations keep that ratio near 1.

With --seed only the timed parts are declared; the parts between the windows are inserted as
their declarations would leave them (counted in the binary's running totals where the code
keeps them). Quick on code whose declarations slow down as parts accumulate: declaring all
10,000 there takes hours.

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
WARM_UP = 50  # declarations of another binary first: caches and connections are warm


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


def new_binary(parts: int, target: str = "universal"):
    from binaries import services
    from binaries.models import Artifact, ArtifactVersion
    from peridio_console.accounts.actors import Actor
    from peridio_console.accounts.models import Organization

    org, _ = Organization.objects.get_or_create(name="Bench", slug="bench")
    artifact, _ = Artifact.objects.get_or_create(organization=org, name="firmware")
    version, _ = ArtifactVersion.objects.get_or_create(
        organization=org, artifact=artifact, version="1.0.0"
    )
    return services.binary_create(
        artifact_version=version,
        target=target,
        actor=Actor.system("bench"),
        hash="1" * 64,
        size=parts * PART,
    )


def windows(parts: int, window: int) -> dict[int, range]:
    """The part indexes timed around each mark: parts 1, 1,000 and the last."""
    marks = sorted({1, min(1_000, parts), parts})
    starts = {mark: min(max(1, mark - window // 2), max(1, parts - window + 1)) for mark in marks}
    return {mark: range(start, min(start + window, parts + 1)) for mark, start in starts.items()}


def seed(binary, start: int, stop: int) -> None:
    """Parts start..stop-1 as their declarations would leave them, inserted at once."""
    from django.db.models import Count, Max, Sum

    from binaries.models import Binary, BinaryPart

    BinaryPart.objects.bulk_create(
        (
            BinaryPart(binary=binary, index=i, hash=f"{i:064x}", size=PART, token=f"{i:032x}")
            for i in range(start, stop)
        ),
        batch_size=1000,
    )
    # Where the code keeps running totals of the parts (not before it did), seeded parts
    # count in them as declared ones do.
    kept = {"parts_count", "parts_bytes", "parts_max_index"} & {
        field.name for field in Binary._meta.concrete_fields
    }
    if kept:
        found = BinaryPart.objects.filter(binary=binary).aggregate(
            parts_count=Count("pk"), parts_bytes=Sum("size"), parts_max_index=Max("index")
        )
        Binary.objects.filter(pk=binary.pk).update(**{name: found[name] for name in kept})


def declare_all(binary, parts: int, timed: set[int], seeded: bool) -> dict[int, float]:
    """Milliseconds taken by each declaration; with `seeded`, only the timed parts are
    declared, the others inserted."""
    from binaries import uploads

    times: dict[int, float] = {}
    index = 1
    while index <= parts:
        if seeded and index not in timed:
            stop = min([i for i in timed if i > index] or [parts + 1])
            seed(binary, index, stop)
            index = stop
            continue
        began = time.perf_counter()
        uploads.part_declare(
            binary=binary, index=index, hash=f"{index:064x}", size=PART, base_url="http://bench/"
        )
        times[index] = (time.perf_counter() - began) * 1000
        index += 1
    return times


def p(times: list[float], percent: int) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[percent - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="postgres://... (default: SQLite)")
    parser.add_argument("--parts", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=100, help="parts timed around each mark")
    parser.add_argument(
        "--seed",
        action="store_true",
        help="insert the parts between the timed windows instead of declaring them (quick "
        "where declarations slow down as parts accumulate, as they did before)",
    )
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
        declare_all(new_binary(WARM_UP, target="warm-up"), WARM_UP, set(), False)
        timed = windows(args.parts, args.window)
        began = time.perf_counter()
        times = declare_all(
            new_binary(args.parts), args.parts, set().union(*timed.values()), args.seed
        )
        how = "declared (the others inserted)" if args.seed else "declared"
        print(f"{kind}: {len(times)} parts {how} in {time.perf_counter() - began:.1f} s")
        print(f"{'around part':>12} {'parts timed':>14} {'p50 ms':>8} {'p95 ms':>8}")
        p50 = {}
        for mark, indexes in timed.items():
            window = [times[i] for i in indexes]
            p50[mark] = p(window, 50)
            span = f"{indexes[0]}-{indexes[-1]}"
            print(f"{mark:>12,} {span:>14} {p50[mark]:8.2f} {p(window, 95):8.2f}")
        print(f"p50({args.parts:,}) / p50(1) = {p50[args.parts] / p50[1]:.2f}")
    finally:
        connections.close_all()
        cleanup()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
