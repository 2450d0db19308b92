"""Migrations that change data, run on rows an earlier release could have written."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from binaries.models import BinarySignature
from tests.signing_helpers import signed_binary
from tests.upload_helpers import random_bytes


def migrate(*target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(target))


@pytest.mark.django_db(transaction=True)
def test_0006_keeps_the_first_signature_of_a_key_and_drops_its_repeats(
    client, engineer_api, version, actor, settings, tmp_path
):
    settings.STORAGE_BACKEND = "filesystem"
    settings.BINARIES_ROOT = tmp_path / "binaries"
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(1000))
    other = signed_binary(
        client, engineer_api, version, actor, random_bytes(1000), target="riscv64-linux-gnu"
    )
    first = BinarySignature.objects.get(binary=binary)
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("binaries")[0]
    migrate(("binaries", "0005_binary_target_listing_index"))
    try:
        # What 0005 allowed: the same key's signature twice (and a third time).
        for _ in range(2):
            BinarySignature.objects.create(
                binary=binary,
                signing_key=first.signing_key,
                signature=first.signature,
                scheme=first.scheme,
            )
        assert BinarySignature.objects.filter(binary=binary).count() == 3
    finally:
        migrate(latest)

    assert list(BinarySignature.objects.filter(binary=binary)) == [first]
    assert BinarySignature.objects.filter(binary=other).count() == 1
