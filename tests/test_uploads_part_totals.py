"""The running totals of a binary's parts, kept on its row, stay equal to the parts through
declarations in any order, re-declarations, refusals, resets and discards, and the migration
that brought them fills them for binaries that already had parts."""

import random
from collections import Counter

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Max, Sum

from binaries import moves, services, uploads
from binaries.models import Binary, BinaryPart
from peridio_console.core.errors import InvalidInput
from tests.upload_helpers import MiB

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


def migrate(*target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(target))


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
