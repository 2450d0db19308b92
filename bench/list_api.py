"""Benchmark GET /v1/binaries on 100,000 binaries in one organization.

    .venv/bin/python bench/list_api.py                     # SQLite, in a temporary folder
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/list_api.py

On PostgreSQL it creates (and afterwards drops) a database named bench_list_api on the server
DATABASE_URL points at; it never touches the database DATABASE_URL names. Requests go through
django.test.Client in-process, so the times are the server's: middleware, API-key check,
query, serialization. Goal: p95 <= 50 ms for every case.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "bench_list_api"
TARGETS = (
    "x86_64-linux-gnu",
    "i686-linux-gnu",
    "aarch64-linux-gnu",
    "arm-linux-gnueabihf",
    "riscv64-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "universal",
)
RARE_TARGET = "custom-soc-v1"  # on 1 version in 1000: the target filter's hard case
STATES = ("signed",) * 7 + ("signable", "uploadable", "destroyed")


def _admin_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _recreate_postgres_database(url: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(_admin_url(url, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")


def configure_database() -> tuple[str, Callable[[], None]]:
    """Point DATABASE_URL at a throwaway database; returns its kind and a clean-up."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        _recreate_postgres_database(url)
        os.environ["DATABASE_URL"] = _admin_url(url, BENCH_DB)
        os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="bench-var-"))
        return "postgresql", lambda: _recreate_postgres_database(url, drop_only=True)
    folder = tempfile.mkdtemp(prefix="bench-list-api-")
    os.environ["VAR_DIR"] = folder
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    return "sqlite", lambda: None


def seed(rows: int) -> tuple[str, str]:
    """An organization with `rows` binaries spread over versions; returns (API key, version)."""
    from django.contrib.auth import get_user_model

    from binaries.models import Artifact, ArtifactVersion, Binary
    from peridio_console.accounts.models import Membership, Organization, Role
    from peridio_console.accounts.services import api_key_create

    org = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user(username="bench", password=None)
    Membership.objects.create(user=user, organization=org, role=Role.ENGINEER)
    _, secret = api_key_create(organization=org, user=user)

    start = datetime(2024, 1, 1, tzinfo=UTC)
    versions_needed = rows // len(TARGETS) + 1
    artifacts = Artifact.objects.bulk_create(
        Artifact(organization=org, name=f"artifact-{n}", created_at=start)
        for n in range(max(1, versions_needed // 100))
    )
    versions = ArtifactVersion.objects.bulk_create(
        (
            ArtifactVersion(
                organization=org,
                artifact=artifacts[n % len(artifacts)],
                version=f"1.0.{n}",
                created_at=start,
            )
            for n in range(versions_needed)
        ),
        batch_size=5000,
    )
    batch: list[Binary] = []
    for n in range(rows):
        version = versions[n // len(TARGETS)]
        target = TARGETS[n % len(TARGETS)]
        if n % len(TARGETS) == 0 and (n // len(TARGETS)) % 1000 == 0:
            target = RARE_TARGET
        # Five minutes apart, with runs of equal timestamps so ties on created_at occur.
        created = start + timedelta(minutes=5 * (n // 3))
        batch.append(
            Binary(
                organization=org,
                artifact_version=version,
                target=target,
                hash=f"{n:064x}",
                size=1024 + n,
                state=STATES[n % len(STATES)],  # seeded directly; the lifecycle is not benched
                description=("nightly build" if n % 10 == 0 else "release build") + f" {n}",
                created_at=created,
                updated_at=created,
            )
        )
        if len(batch) == 5000:
            Binary.objects.bulk_create(batch)
            batch = []
    Binary.objects.bulk_create(batch)
    return secret, versions[len(versions) // 2].prn


def timed(client, url: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.content[:300]
    return times


def deep_cursor(client, url: str, pages: int) -> tuple[str, list[float]]:
    page: str | None = None
    times: list[float] = []
    for _ in range(pages):
        began = time.perf_counter()
        response = client.get(url + (f"&page={page}" if page else ""))
        times.append((time.perf_counter() - began) * 1000)
        page = response.json()["next_page"]
    assert page is not None, "ran out of pages"
    return page, times


def percentile(times: list[float], p: float) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[int(p) - 1]


def explain(sql_of: Callable[[], object]) -> str:
    from django.db import connection

    queryset = sql_of()
    sql, params = queryset.query.sql_with_params()  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        cursor.execute(prefix + sql, params)
        return " | ".join(str(row[-1]) for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    kind, cleanup = configure_database()
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peridio_console.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # allows the test client's host; DEBUG off, as in production
    try:
        call_command("migrate", verbosity=0)
        began = time.perf_counter()
        secret, version_prn = seed(args.rows)
        if kind == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        print(f"{kind}: seeded {args.rows} binaries in {time.perf_counter() - began:.1f} s")
        client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
        client.get("/v1/binaries")  # warm up
        cursor_500, walk = deep_cursor(client, "/v1/binaries?limit=10", 500)
        cases = {
            "first page (limit 10)": "/v1/binaries",
            "first page (limit 100)": "/v1/binaries?limit=100",
            "500 pages deep (limit 10)": f"/v1/binaries?limit=10&page={cursor_500}",
            "500 pages deep, desc": None,
            "target filter": "/v1/binaries?target=aarch64-linux-gnu",
            "rare target filter": f"/v1/binaries?target={RARE_TARGET}",
            "state filter": "/v1/binaries?state=uploadable",
            "artifact version filter": "/v1/binaries?"
            + urlencode({"artifact_version_prn": version_prn}),
            "search description-nightly": "/v1/binaries?"
            + urlencode({"search": "description-nightly"}),
            "search target: and size>=": "/v1/binaries?"
            + urlencode({"search": "target:universal and size>=50000"}),
            "search (no match, full scan)": "/v1/binaries?"
            + urlencode({"search": "description~'no such words'"}),
        }
        desc_cursor, _ = deep_cursor(client, "/v1/binaries?limit=10&order=desc", 500)
        cases["500 pages deep, desc"] = f"/v1/binaries?limit=10&order=desc&page={desc_cursor}"
        print(f"{'case':32} {'p50 ms':>8} {'p95 ms':>8}")
        print(
            f"{'walking pages 1-500 (each)':32} {percentile(walk, 50):8.2f} "
            f"{percentile(walk, 95):8.2f}"
        )
        for name, url in cases.items():
            assert url is not None
            times = timed(client, url, args.repeat)
            print(f"{name:32} {percentile(times, 50):8.2f} {percentile(times, 95):8.2f}")
        if args.explain:
            print_plans(version_prn)
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"kept the database: {os.environ['DATABASE_URL']}")
        else:
            cleanup()


def print_plans(version_prn: str) -> None:
    from binaries import selectors
    from peridio_console.accounts.models import Organization

    org = Organization.objects.get(slug="bench")
    version = selectors.get_artifact_version(org, version_prn)
    ordered = ("created_at", "id")
    plans = {
        "first page": lambda: selectors.binary_list(org).order_by(*ordered)[:11],
        "target": lambda: selectors.binary_list(org, target="aarch64-linux-gnu").order_by(*ordered)[
            :11
        ],
        "rare target": lambda: selectors.binary_list(org, target=RARE_TARGET).order_by(*ordered)[
            :11
        ],
        "version": lambda: selectors.binary_list(org, artifact_version=version).order_by(*ordered)[
            :11
        ],
        "search": lambda: selectors.binary_list(org, search="description-nightly").order_by(
            *ordered
        )[:11],
    }
    for name, make in plans.items():
        print(f"plan {name}: {explain(make)}")


if __name__ == "__main__":
    main()
