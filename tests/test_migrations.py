"""Migrations that change data, run on rows an earlier release could have written."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from binaries.models import BinaryEvent, BinarySignature
from tests.factories import BinaryFactory, BinarySignatureFactory
from tests.signing_helpers import signed_binary
from tests.upload_helpers import random_bytes


def migrate(*target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(target))


@pytest.mark.django_db(transaction=True)
def test_0006_keeps_the_first_signature_of_a_key_and_drops_its_repeats(
    client, engineer_api, version, actor
):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(1000))
    other = signed_binary(
        client, engineer_api, version, actor, random_bytes(1000), target="riscv64-linux-gnu"
    )
    first = BinarySignature.objects.get(binary=binary)
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("binaries")[0]
    migrate(("binaries", "0005_binary_target_listing_index"))
    try:
        # What 0005 allowed: the same key's signature twice (and a third time).
        BinarySignatureFactory.create_batch(
            2,
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


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_accounts_tables_and_history_where_an_earlier_release_left_them(org):
    """The accounts app moved to peridio_console/accounts/ under its old label: its tables and
    migration history keep their names, so an existing database has nothing to migrate, and
    rows written before the move are read by the moved models."""
    from django.apps import apps
    from django.core.management import call_command

    from peridio_console.accounts.models import Organization

    config = apps.get_app_config("peridio_console")
    assert config.name == "peridio_console.accounts"
    assert Organization._meta.db_table == "peridio_console_organization"
    executor = MigrationExecutor(connection)
    # The history from before the move, under its label (later migrations build on it).
    assert ("peridio_console", "0002_signing_and_audit") in executor.loader.graph.nodes
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits 1 on changes
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM peridio_console_organization WHERE id = %s", [org.pk])
        assert cursor.fetchone() == (org.name,)


@pytest.mark.django_db(transaction=True)
def test_0009_writes_the_action_and_organization_of_events_written_before_them(version):
    """Events written before 0008 had no action: 0009 gives each the action the trail used to
    work out when reading it, and its binary's organization; sources stay unrecorded, but for
    the system's tasks."""
    binary = BinaryFactory(artifact_version=version)
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("binaries")[0]
    before = ("binaries", "0008_binaryevent_action_source_ip")
    migrate(before)
    try:
        old = MigrationExecutor(connection).loader.project_state(before).apps
        Event = old.get_model("binaries", "BinaryEvent")
        rows = {
            "binary.created": ("", "uploadable", {}, "alice"),
            "binary.hashable": ("uploadable", "hashable", {}, "alice (API key abc)"),
            "binary.signable": ("hashing", "signable", {}, "system: verifier"),
            "binary.requeued": ("hashing", "hashing", {"requeued": True}, "system: sweeper"),
            "binary.upload_cleaned": ("uploadable", "uploadable", {"parts_removed": 2}, "bob"),
            "binary.integrity_failed": ("signed", "signed", {"found": "x"}, "system: scrubber"),
        }
        ids = {
            action: Event.objects.create(
                binary_id=binary.pk,
                actor_label=label,
                from_state=from_state,
                to_state=to_state,
                details=details,
            ).pk
            for action, (from_state, to_state, details, label) in rows.items()
        }
    finally:
        migrate(latest)

    for action, pk in ids.items():
        event = BinaryEvent.objects.get(pk=pk)
        assert event.action == action
        assert event.organization_id == binary.organization_id
        assert event.source == ("task" if event.actor_label.startswith("system: ") else "")
