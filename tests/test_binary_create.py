"""Creating binaries: one live binary per (artifact version, target), kept by the database too."""

import pytest
from django.db import IntegrityError, transaction

from binaries import lifecycle, services
from binaries.models import Binary, BinaryEvent, State
from peridio_console.core.errors import Conflict, InvalidInput
from tests.factories import ArtifactVersionFactory, BinaryFactory, binary_in_state

HEX = "ab" * 32


def _create(version, actor, target="aarch64-linux-gnu", **kwargs) -> Binary:
    fields = {"hash": HEX, "size": 1024, **kwargs}
    return services.binary_create(artifact_version=version, target=target, actor=actor, **fields)


def test_it_creates_an_uploadable_binary_with_its_creation_event(version, actor):
    binary = services.binary_create(
        artifact_version=version,
        target="custom-soc-v1",
        actor=actor,
        hash=f"sha256:{HEX.upper()}",
        size=0,
        description="nightly",
        custom_metadata={"commit": "abc123"},
    )

    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.organization == version.organization
    assert binary.artifact_version == version
    assert binary.target == "custom-soc-v1"
    assert binary.hash == HEX
    assert binary.hash_display == f"sha256:{HEX}"
    assert binary.size == 0
    assert binary.description == "nightly"
    assert binary.custom_metadata == {"commit": "abc123"}
    event = binary.events.get()
    assert (event.from_state, event.to_state) == ("", State.UPLOADABLE)
    assert event.actor_label == actor.label
    assert event.actor_user == actor.user


def test_it_creates_a_binary_before_its_hash_and_size_are_known(version, actor):
    binary = services.binary_create(artifact_version=version, target="universal", actor=actor)

    binary.refresh_from_db()
    assert (binary.hash, binary.size, binary.state) == (None, None, State.UPLOADABLE)


@pytest.mark.parametrize(
    ("field", "value"),
    [("target", "arm linux"), ("hash", "sha256:abc"), ("size", -1), ("description", "x" * 257)],
)
def test_it_refuses_bad_input_and_creates_nothing(version, actor, field, value):
    kwargs = {"target": "universal", "hash": HEX, "size": 1, field: value}

    with pytest.raises(InvalidInput) as excinfo:
        services.binary_create(artifact_version=version, actor=actor, **kwargs)

    assert excinfo.value.field == field
    assert not Binary.objects.exists()
    assert not BinaryEvent.objects.exists()


def test_it_refuses_a_second_live_binary_for_the_same_target(version, actor):
    first = _create(version, actor)

    with pytest.raises(Conflict) as excinfo:
        _create(version, actor, hash="cd" * 32)

    message = excinfo.value.message
    assert "'aarch64-linux-gnu'" in message
    assert first.prn in message
    assert "uploadable" in message
    assert excinfo.value.status == 409
    assert excinfo.value.code == "target_taken"
    assert excinfo.value.field == "target"
    assert Binary.objects.filter(artifact_version=version).count() == 1
    assert BinaryEvent.objects.count() == 1


@pytest.mark.parametrize("state", [State.HASHABLE, State.HASHING, State.SIGNABLE, State.SIGNED])
def test_it_keeps_the_target_taken_in_every_live_state(version, actor, state):
    taken = binary_in_state(state, artifact_version=version, target="universal")

    with pytest.raises(Conflict, match=rf"target 'universal' \({taken.prn}, {state}\)"):
        _create(version, actor, target="universal")


@pytest.mark.parametrize(
    ("state", "actions"),
    [
        (
            State.UPLOADABLE,
            "upload its content (Upload content on its page, or `peridio binaries upload`) "
            "or discard it, or use another target.",
        ),
        (State.HASHABLE, "wait for its verification or discard it, or use another target."),
        (
            State.HASHING,
            "wait for its verification, or reset it to uploadable and discard it, or use "
            "another target.",
        ),
        (State.SIGNABLE, "sign it, or destroy it, or use another target."),
        (State.SIGNED, "destroy it, or use another target."),
    ],
)
def test_it_names_what_can_be_done_with_the_binary_holding_the_target(
    version, actor, state, actions
):
    binary_in_state(state, artifact_version=version, target="universal")

    with pytest.raises(Conflict) as excinfo:
        _create(version, actor, target="universal")

    assert excinfo.value.message.endswith(f", {state}); {actions}")


def test_it_frees_the_target_once_the_binary_is_destroyed(version, actor):
    first = _create(version, actor)
    for step in (State.HASHABLE, State.HASHING, State.SIGNABLE, State.DESTROYED):
        lifecycle.transition(first, to=step, actor=actor)
    first.refresh_from_db()
    assert first.state == State.DESTROYED
    assert first.events.order_by("-id").values_list("to_state", flat=True)[0] == State.DESTROYED

    second = _create(version, actor)

    assert second.pk != first.pk
    assert second.state == State.UPLOADABLE
    assert list(
        Binary.objects.filter(artifact_version=version, target="aarch64-linux-gnu")
        .order_by("id")
        .values_list("state", flat=True)
    ) == [State.DESTROYED, State.UPLOADABLE]
    # The destroyed record and its history stay.
    assert first.events.count() == 5


def test_it_lets_the_same_target_live_in_another_version(version, actor):
    other = ArtifactVersionFactory(artifact=version.artifact)
    _create(version, actor)

    _create(other, actor)

    assert Binary.objects.filter(target="aarch64-linux-gnu").count() == 2


def test_it_lets_other_targets_live_in_the_same_version(version, actor):
    for target in ("x86_64-linux-gnu", "aarch64-linux-gnu", "universal", "custom-soc-v1"):
        _create(version, actor, target=target)

    assert version.binaries.count() == 4


def test_it_treats_targets_as_case_sensitive(version, actor):
    _create(version, actor, target="custom-soc-v1")

    _create(version, actor, target="Custom-SOC-v1")

    assert version.binaries.count() == 2


# --- the database keeps the rule even when the service is bypassed ------------------------


def _row(version, **fields) -> Binary:
    values = {
        "organization": version.organization,
        "artifact_version": version,
        "target": "universal",
        "hash": HEX,
        "size": 1,
    }
    values.update(fields)
    return Binary(**values)


def test_it_has_a_partial_unique_index_on_live_binaries(version):
    Binary.objects.bulk_create([_row(version)])

    with pytest.raises(IntegrityError), transaction.atomic():
        Binary.objects.bulk_create([_row(version)])

    assert Binary.objects.count() == 1


def test_it_lets_the_database_hold_many_destroyed_binaries_per_target(version):
    Binary.objects.bulk_create(
        [_row(version, state=State.DESTROYED), _row(version, state=State.DESTROYED), _row(version)]
    )

    assert Binary.objects.filter(target="universal").count() == 3


@pytest.mark.parametrize(
    "fields",
    [{"size": -1}, {"size": 53_687_091_200_001}, {"state": "bogus"}, {"state": ""}],
    ids=["negative-size", "size-over-50TB", "bogus-state", "empty-state"],
)
def test_it_has_check_constraints_on_size_and_state(version, fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        Binary.objects.bulk_create([_row(version, **fields)])

    assert not Binary.objects.exists()


def test_it_accepts_the_edges_of_the_size_check(version):
    Binary.objects.bulk_create(
        [
            _row(version, target="a", size=0),
            _row(version, target="b", size=53_687_091_200_000),
            _row(version, target="c", size=None),
        ]
    )

    assert Binary.objects.count() == 3


def test_it_refuses_a_duplicate_live_row_through_the_factory_too(version):
    BinaryFactory(artifact_version=version, target="universal")

    with pytest.raises(IntegrityError), transaction.atomic():
        BinaryFactory(artifact_version=version, target="universal")
