"""Benchmark the audit trail with 10,000,000 events in one organization, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/audit.py

It creates (and afterwards drops) a database named bench_audit on the server DATABASE_URL
points at; it never touches the database DATABASE_URL names. The events are seeded by SQL
(generate_series, indexes built afterwards): 30% binary events over 1,000 binaries, 70% other
events (mostly download URLs issued), one every 3 s from 2024-01-01, 12 members, four sources.
Requests go through django.test.Client in-process, so the times are the server's. It prints
p50/p95 for the console's audit page and the API's audit list (first page, and a page deep in
a filtered walk), the binary page (timeline and chart), and the peak RSS of a process
streaming the whole trail as CSV and as JSON (a child process each, so that nothing else
counts). Goals: p95 <= 50 ms; export <= 150 MB.
"""

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get("BENCH_AUDIT_DB", "bench_audit")  # a name of your own if shared
BINARIES = 1_000
MEMBERS = 12
START = "2024-01-01T00:00:00Z"
BINARY_ACTIONS = (
    "binary.created",
    "binary.hashable",
    "binary.hashing",
    "binary.signable",
    "binary.signed",
    "binary.requeued",
    "binary.updated",
)
OTHER_ACTIONS = ("download_url.issued",) * 16 + (
    "binary_signature.created",
    "signing_key.created",
    "api_key.created",
    "membership.changed",
)
SOURCES = ("api", "cli", "console", "task")
PASSWORD = secrets.token_urlsafe(16)


def _url(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _recreate(url: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(_url(url, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")


def _sql_list(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def seed(events: int) -> dict:
    """Members, binaries and `events` events; returns what the cases need."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from binaries.models import Artifact, ArtifactVersion, Binary
    from peridio_console.accounts.models import Membership, Organization, Role
    from peridio_console.accounts.services import api_key_create

    org = Organization.objects.create(name="Bench", slug="bench")
    users = [
        get_user_model().objects.create_user(username=f"member{n}", password=PASSWORD)
        for n in range(MEMBERS)
    ]
    for user in users:
        Membership.objects.create(user=user, organization=org, role=Role.ADMIN)
    _, secret = api_key_create(organization=org, user=users[0])
    artifact = Artifact.objects.create(organization=org, name="firmware")
    version = ArtifactVersion.objects.create(organization=org, artifact=artifact, version="1.0")
    binaries = Binary.objects.bulk_create(
        Binary(
            organization=org,
            artifact_version=version,
            target=f"target-{n}",
            hash=f"{n:064x}",
            size=1024,
            state="signed",
        )
        for n in range(BINARIES)
    )
    first_binary = binaries[0].pk
    org_uuid = str(org.uuid)
    user_ids = [u.pk for u in users]
    binary_events = events * 3 // 10
    other_events = events - binary_events
    tables = ("binaries_binaryevent", "peridio_console_auditevent", "binaries_downloadserved")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef, indexname FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexname NOT LIKE '%%pkey'",
            [list(tables)],
        )
        indexes = cursor.fetchall()
        began = time.perf_counter()
        # The seeded rows reference rows that exist: skip the per-row foreign key triggers.
        cursor.execute("SET session_replication_role = replica")
        for _, name in indexes:  # built once after the load: far faster than row by row
            cursor.execute(f'DROP INDEX "{name}"')
        users_sql = "ARRAY[" + ", ".join(map(str, user_ids)) + "]"
        cursor.execute(
            f"""
            INSERT INTO binaries_binaryevent (binary_id, organization_id, action, actor_user_id,
                actor_label, source, ip, user_agent, from_state, to_state, reason, details, at)
            SELECT {first_binary} + (i % {BINARIES}), {org.pk},
                ({_sql_list(BINARY_ACTIONS)})[1 + (i / {BINARIES}) % {len(BINARY_ACTIONS)}],
                ({users_sql})[1 + i % {MEMBERS}], 'member' || (i % {MEMBERS}),
                ({_sql_list(SOURCES)})[1 + i % {len(SOURCES)}], '10.0.0.1', 'bench',
                'signable', 'signed', '', '{{}}',
                TIMESTAMPTZ '{START}' + (i * 10 / 3) * INTERVAL '1 second'
            FROM generate_series(0, {binary_events - 1}) AS i
            """,  # noqa: S608 (the bench's own constants and ids)
        )
        cursor.execute(
            f"""
            INSERT INTO peridio_console_auditevent (organization_id, action, actor_user_id,
                actor_label, source, object_prn, details, ip, user_agent, at)
            SELECT {org.pk}, ({_sql_list(OTHER_ACTIONS)})[1 + i % {len(OTHER_ACTIONS)}],
                ({users_sql})[1 + i % {MEMBERS}], 'member' || (i % {MEMBERS}),
                ({_sql_list(SOURCES)})[1 + (i / 7) % {len(SOURCES)}],
                'prn:1:{org_uuid}:binary:' || b.uuid, '{{"target": "bench"}}', '10.0.0.2',
                'bench', TIMESTAMPTZ '{START}' + (i * 10 / 7) * INTERVAL '1 second'
            FROM generate_series(0, {other_events - 1}) AS i
            JOIN binaries_binary b ON b.id = {first_binary} + (i % {BINARIES})
            """,  # noqa: S608
        )
        # Served downloads too (the filesystem chart's source), one for every ten events.
        cursor.execute(
            f"""
            INSERT INTO binaries_downloadserved (organization_id, binary_id, bytes_served,
                completed, at)
            SELECT {org.pk}, {first_binary} + (i % {BINARIES}), 1024, i % 5 <> 0,
                now() - (i::bigint * {315_360_000_000 // events}) * INTERVAL '1 millisecond'
            FROM generate_series(0, {events // 10 - 1}) AS i
            """,  # noqa: S608
        )
        cursor.execute("SET session_replication_role = DEFAULT")
        loaded = time.perf_counter()
        for definition, _ in indexes:
            cursor.execute(definition)
        indexed = time.perf_counter()
        cursor.execute("ANALYZE")
        print(
            f"rows loaded in {loaded - began:.0f} s, indexes built in {indexed - loaded:.0f} s, "
            f"analyzed in {time.perf_counter() - indexed:.0f} s"
        )
    return {
        "secret": secret,
        "username": users[0].username,
        "actor": users[3].username,
        "binary": binaries[BINARIES // 2],
    }


def existing() -> dict:
    """What seed() returned, from a database kept by an earlier run (--reuse)."""
    from django.contrib.auth import get_user_model

    from binaries.models import Binary
    from peridio_console.accounts.models import Organization
    from peridio_console.accounts.services import api_key_create

    org = Organization.objects.get(slug="bench")
    users = get_user_model().objects.filter(username__startswith="member")
    first = users.get(username="member0")
    _, secret = api_key_create(organization=org, user=first)
    return {
        "secret": secret,
        "username": first.username,
        "actor": users.get(username="member3").username,
        "binary": Binary.objects.filter(organization=org).order_by("id")[BINARIES // 2],
    }


def percentile(times: list[float], p: int) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[p - 1]


def timed(client, url: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.content[:300]
    return times


def api_deep_page(client, query: dict, pages: int) -> str:
    """The cursor `pages` pages into a filtered walk of GET /v1/audit_events."""
    page = ""
    for _ in range(pages):
        body = client.get(
            "/v1/audit_events?" + urlencode({**query, **({"page": page} if page else {})})
        ).json()
        page = body["next_page"]
        assert page, "ran out of pages"
    return page


def console_deep_page(client, query: dict, pages: int) -> str:
    """The console's `?...&page=` link `pages` pages into a filtered walk."""
    import re

    url = "/audit/?" + urlencode(query)
    for _ in range(pages):
        html = client.get(url).content.decode()
        found = re.search(r'href="\?([^"]+)" rel="next"', html)
        assert found, "ran out of pages"
        url = "/audit/?" + found.group(1).replace("&amp;", "&")
    return url


EXPORT_CHILD = """
import os, sys, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peridio_console.settings")
django.setup()
from binaries import timeline
from peridio_console.accounts.models import Organization
org = Organization.objects.get(slug="bench")
rows = timeline.iterate(org, timeline.Filters())
body = timeline.csv_rows(rows) if sys.argv[1] == "csv" else timeline.json_rows(rows)
size = 0
for piece in body:
    size += len(piece)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child started by a
# 180 MB parent reports 180 MB whatever it used itself.
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) // 1024
print(size, peak)
"""


def export_peak(fmt: str) -> tuple[int, int, float]:
    """(bytes written, peak RSS in MB, seconds) of a child process exporting the whole trail."""
    began = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", EXPORT_CHILD, fmt],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1]), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--deep", type=int, default=200, help="pages into the filtered walk")
    parser.add_argument("--no-export", action="store_true", help="skip the export runs")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure a kept database again")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("bench/audit.py seeds PostgreSQL: set DATABASE_URL=postgres://...")
    if not args.reuse:
        _recreate(url)
    os.environ["DATABASE_URL"] = _url(url, BENCH_DB)
    os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="bench-var-"))
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peridio_console.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    try:
        call_command("migrate", verbosity=0)
        began = time.perf_counter()
        world = existing() if args.reuse else seed(args.events)
        if not args.reuse:
            seconds = time.perf_counter() - began
            print(f"postgresql: seeded {args.events:,} events in {seconds:.0f} s")
        api = Client(HTTP_AUTHORIZATION=f"Bearer {world['secret']}")
        console = Client()
        from django.contrib.auth import get_user_model

        console.force_login(get_user_model().objects.get(username=world["username"]))
        binary = world["binary"]
        filtered = {"action": "download_url.issued", "actor": world["actor"]}
        api_deep = api_deep_page(api, {**filtered, "limit": 50}, args.deep)
        console_deep = console_deep_page(console, filtered, args.deep)
        cases = {
            "console audit, first page": "/audit/",
            f"console audit, page {args.deep + 1} of action+actor": console_deep,
            "console audit, source=cli, 2024-03 only": "/audit/?"
            + urlencode(
                {"source": "cli", "since": "2024-03-01T00:00", "until": "2024-04-01T00:00"}
            ),
            "console destroyed binaries (none)": "/audit/destroyed",
            "API audit list, first page (50)": "/v1/audit_events",
            f"API audit list, page {args.deep + 1} of action+actor": "/v1/audit_events?"
            + urlencode({**filtered, "limit": 50, "page": api_deep}),
            "API audit list, object=binary PRN": "/v1/audit_events?"
            + urlencode({"object": binary.prn}),
            "binary page (timeline and chart)": f"/binaries/{binary.uuid}/",
        }
        print(f"{'case':48} {'p50 ms':>8} {'p95 ms':>8}")
        for name, path in cases.items():
            client = api if path.startswith("/v1/") else console
            timed(client, path, 3)  # warm up
            times = timed(client, path, args.repeat)
            print(f"{name:48} {percentile(times, 50):8.1f} {percentile(times, 95):8.1f}")
        if not args.no_export:
            for fmt in ("csv", "json"):
                size, peak, seconds = export_peak(fmt)
                print(
                    f"export {fmt}: {size / 2**30:.2f} GiB of {args.events:,} events in "
                    f"{seconds:.0f} s, peak RSS {peak} MB"
                )
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"(this process's own peak RSS: {own} MB)")
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"kept the database: {os.environ['DATABASE_URL']}")
        else:
            _recreate(url, drop_only=True)


if __name__ == "__main__":
    main()
