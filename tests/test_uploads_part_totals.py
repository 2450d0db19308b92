"""Declaring a part costs the same for part 1 and part 10,000: the checks read running totals
kept on the binary's row, never the other parts. The totals stay equal to the parts through
declarations in any order, re-declarations, refusals, resets and discards, and the migration
that brought them fills them for binaries that already had parts."""

import random
import re
import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Max, Sum
from django.test.utils import CaptureQueriesContext

from binaries import moves, services, storage, uploads
from binaries.models import Binary, BinaryPart, PartState
from peridio_console.core.errors import InvalidInput
from tests.test_migrations import migrate
from tests.upload_helpers import MiB, declare, put_bytes, random_bytes

URL = "http://testserver/"


def sized(version, actor, size: int, target: str = "universal") -> Binary:
    return services.binary_create(
        artifact_version=version, target=target, actor=actor, hash="1" * 64, size=size
    )


def declare_size(binary: Binary, index: int, size: int) -> uploads.DeclaredPart:
    return uploads.part_declare(
        binary=binary, index=index, hash=f"{index:064x}", size=size, base_url=URL
    )


def totals(binary: Binary) -> tuple[int, int, int]:
    binary.refresh_from_db()
    return binary.parts_count, binary.parts_bytes, binary.parts_max_index


def counted(binary: Binary) -> tuple[int, int, int]:
    found = BinaryPart.objects.filter(binary=binary).aggregate(
        count=Count("pk"), size=Sum("size"), top=Max("index")
    )
    return found["count"], found["size"] or 0, found["top"] or 0


def shape(sql: str) -> str:
    """A statement without its values: quoted strings and numbers."""
    return re.sub(r"'[^']*'|\d+", "?", sql)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_declares_part_500_with_the_queries_of_part_1(backend, version, actor):
    """On the filesystem backend, the costlier one: it also looks after parts written in place."""
    binary = sized(version, actor, 500 * 5 * MiB)
    fresh = Binary.objects.get(pk=binary.pk)  # as a request reads it
    with CaptureQueriesContext(connection) as first:
        declare_size(fresh, 1, 5 * MiB)
    for index in range(2, 500):
        declare_size(binary, index, 5 * MiB)
    fresh = Binary.objects.get(pk=binary.pk)
    with CaptureQueriesContext(connection) as last:
        declare_size(fresh, 500, 5 * MiB)

    assert len(last) == len(first)
    assert [shape(q["sql"]) for q in last] == [shape(q["sql"]) for q in first]
    # No statement reads the other parts: each SELECT, run again now that 500 parts exist,
    # answers one row at most, and none aggregates over the parts.
    selects = [q["sql"] for q in last if q["sql"].lstrip().upper().startswith("SELECT")]
    assert any("binaries_binarypart" in sql for sql in selects)
    with connection.cursor() as cursor:
        for sql in selects:
            cursor.execute(sql)
            assert len(cursor.fetchall()) <= 1, sql
            assert not re.search(r"\b(COUNT|SUM|MAX)\(", sql, re.IGNORECASE), sql
    assert totals(binary) == (500, 500 * 5 * MiB, 500) == counted(binary)


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_totals_equal_to_the_parts(backend, version, actor):
    """Out of order, re-declared with other sizes, refused, reset, discarded."""
    rng = random.Random(8)
    outcomes: Counter[str] = Counter()
    binary = sized(version, actor, 40 * MiB + 123)
    for _ in range(60):
        index = rng.randint(1, 9)
        part_size = rng.choice([5 * MiB, 6 * MiB, 123, 5 * MiB + 123, 4 * MiB])
        try:
            declare_size(binary, index, part_size)
            outcomes["taken"] += 1
        except InvalidInput:
            outcomes["refused"] += 1
        assert totals(binary) == counted(binary)
    assert outcomes["taken"] >= 10 and outcomes["refused"] >= 10, outcomes

    binary.refresh_from_db()
    uploads.discard_upload(binary, actor=actor, reason="test")
    assert totals(binary) == (0, 0, 0) == counted(binary)

    declare_size(binary, 2, 5 * MiB)
    moves.reset(binary=binary, actor=actor, reason="test")
    assert totals(binary) == (0, 0, 0) == counted(binary)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_asks_again_only_for_the_parts_above_a_part_that_changed_size(
    client, backend, version, actor
):
    binary = sized(version, actor, 20 * MiB + 1)
    for index in range(1, 5):
        chunk = random_bytes(5 * MiB)
        assert put_bytes(client, declare(binary, index, chunk), chunk) == 200

    declare_size(binary, 2, 5 * MiB)  # the same size again: nothing moved
    parts = list(binary.parts.all())
    assert [p.state for p in parts] == [PartState.VALID, PartState.UPLOADABLE] + 2 * [
        PartState.VALID
    ]

    declare_size(binary, 2, 5 * MiB + 1)  # one byte longer: parts 3 and 4 moved
    parts = list(binary.parts.all())
    assert [(p.state, p.offset) for p in parts] == [
        (PartState.VALID, 0),
        (PartState.UPLOADABLE, 5 * MiB),
        (PartState.UPLOADABLE, None),
        (PartState.UPLOADABLE, None),
    ]
    assert [p.last_error for p in parts[2:]] == [
        "An earlier part changed size; upload part 3 again.",
        "An earlier part changed size; upload part 4 again.",
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_checks_the_totals_again_under_the_lock(backend, version, actor, monkeypatch):
    """Another part declared while this declaration called the store (after its first check)
    counts: together they would exceed the binary, so the later one is refused."""
    binary = sized(version, actor, 10 * MiB + 1)
    real_start = storage.FilesystemStorage.start_upload
    meanwhile = [1]

    def another_declaration_meanwhile(self, target):
        if meanwhile:
            index = meanwhile.pop()
            declare_size(Binary.objects.get(pk=target.pk), index, 5 * MiB + 1)
        real_start(self, target)

    monkeypatch.setattr(storage.FilesystemStorage, "start_upload", another_declaration_meanwhile)
    with pytest.raises(InvalidInput) as refused:
        declare_size(binary, 2, 5 * MiB + 1)

    assert refused.value.message == (
        f"Part 2 of {5 * MiB + 1} bytes would make the parts {10 * MiB + 2} bytes in all, "
        f"more than the binary's declared size of {10 * MiB + 1}."
    )
    assert [p.index for p in binary.parts.all()] == [1]
    assert totals(binary) == (1, 5 * MiB + 1, 1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_reads_the_part_after_waiting_for_the_lock(backend, version, actor, monkeypatch):
    """Two first declarations of one part: the second waits for the binary's row while the
    first inserts the part. It must then see both the totals and the part as the first left
    them; read in the statement that waited, PostgreSQL showed it the new totals but not the
    new part, and it refused the part as making the binary twice its size."""
    binary = sized(version, actor, 5 * MiB)
    real_update_or_create = BinaryPart.objects.update_or_create
    inserted, go_on = threading.Event(), threading.Event()

    def first_holds_its_lock(*args, **kwargs):
        made = real_update_or_create(*args, **kwargs)
        if not inserted.is_set():
            inserted.set()
            go_on.wait(timeout=30)
        return made

    monkeypatch.setattr(BinaryPart.objects, "update_or_create", first_holds_its_lock)
    results: dict[str, object] = {}

    def declaration(name: str) -> None:
        try:
            results[name] = declare_size(Binary.objects.get(pk=binary.pk), 1, 5 * MiB)
        except Exception as exc:
            results[name] = exc
        finally:
            connection.close()

    first = threading.Thread(target=declaration, args=("first",))
    first.start()
    assert inserted.wait(timeout=30)
    second = threading.Thread(target=declaration, args=("second",))
    second.start()
    waiting_for_a_lock()
    go_on.set()
    first.join(timeout=30)
    second.join(timeout=30)

    assert all(isinstance(r, uploads.DeclaredPart) for r in results.values()), results
    assert totals(binary) == (1, 5 * MiB, 1) == counted(binary)


def waiting_for_a_lock() -> None:
    """Until another session waits for a row lock (PostgreSQL); on SQLite a moment."""
    if connection.vendor != "postgresql":
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT 1 FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchall():
                return
            time.sleep(0.02)
    raise AssertionError("no session came to wait for the binary's row lock")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_0007_fills_the_totals_of_binaries_that_have_parts(backend, version, actor):
    gapped = sized(version, actor, 30 * MiB)
    for index, size in ((4, 5 * MiB), (1, 5 * MiB), (2, 6 * MiB)):
        declare_size(gapped, index, size)
    whole = sized(version, actor, 1, target="aarch64-linux-gnu")
    declare_size(whole, 1, 1)
    empty = sized(version, actor, 1, target="custom-soc-v1")
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("binaries")[0]
    migrate(("binaries", "0006_one_signature_per_key"))
    migrate(latest)

    assert totals(gapped) == (3, 16 * MiB, 4)
    assert totals(whole) == (1, 1, 1)
    assert totals(empty) == (0, 0, 0)
