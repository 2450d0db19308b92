"""The lifecycle table, move by move, and the client's way into it (binary_request_state)."""

import pytest

from binaries import lifecycle, moves
from binaries.lifecycle import ALLOWED, CLIENT_MOVES, TransitionRefused
from binaries.models import BinaryEvent, State
from peridio_console.accounts.actors import Actor
from peridio_console.core.errors import Conflict, InvalidInput
from tests.factories import ApiKeyFactory, BinaryFactory, BinaryPartFactory, binary_in_state

STATES = [state.value for state in State]
ALLOWED_MOVES = [(src, to) for src in STATES for to in STATES if to in ALLOWED[src]]
REFUSED_MOVES = [(src, to) for src in STATES for to in STATES if to not in ALLOWED[src]]
# Asking for "signed" is covered apart: it needs a valid signature, not only the right state;
# so is "hashable": it needs the uploaded parts (tests/test_upload_protocol.py drives that).
CLIENT_ALLOWED = [
    (src, to)
    for to, sources in CLIENT_MOVES.items()
    for src in sorted(sources)
    if to not in (State.SIGNED, State.HASHABLE)
]
# Asking for "hashing" (a no-op from hashable/hashing) and "signed" (needs a signature) have
# their own tests below.
CLIENT_REFUSED = [
    (src, to)
    for src in STATES
    for to in STATES
    if to not in (State.HASHING, State.SIGNED)
    and src not in CLIENT_MOVES.get(to, frozenset())
    # Resetting an uploadable binary is the guide's "reset a failed upload": see below.
    and (src, to) != (State.UPLOADABLE, State.UPLOADABLE)
]


def _moves_text(moves) -> str:
    return ", ".join(sorted(moves)) if moves else "none (it is final)"


def test_it_has_exactly_the_moves_of_the_design_table():
    assert set(ALLOWED) == set(STATES)
    assert set(ALLOWED_MOVES) == {
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
        ("hashing", "uploadable"),
        ("signable", "signed"),
        ("hashable", "uploadable"),
        ("signable", "uploadable"),
        ("signable", "destroyed"),
        ("signed", "destroyed"),
        ("uploadable", "destroyed"),
        ("hashable", "destroyed"),
    }
    assert len(ALLOWED_MOVES) + len(REFUSED_MOVES) == 36


def test_it_only_lets_clients_ask_for_moves_the_table_allows():
    for to, sources in CLIENT_MOVES.items():
        for src in sources:
            assert to in ALLOWED[src], (src, to)


@pytest.mark.django_db
@pytest.mark.parametrize(("src", "to"), ALLOWED_MOVES)
def test_it_performs_each_allowed_move(src, to, actor):
    binary = binary_in_state(src)
    before = binary.events.count()

    moved = lifecycle.transition(binary, to=to, actor=actor, reason=f"test {src} to {to}")

    assert moved.state == to
    binary.refresh_from_db()
    assert binary.state == to
    assert binary.events.count() == before + 1
    event = binary.events.order_by("-id").first()
    assert event is not None
    assert event.from_state == src
    assert event.to_state == to
    assert event.actor_label == actor.label
    assert event.actor_user == actor.user
    assert event.reason == f"test {src} to {to}"


@pytest.mark.django_db
@pytest.mark.parametrize(("src", "to"), REFUSED_MOVES)
def test_it_refuses_each_move_not_in_the_table(src, to, actor):
    binary = binary_in_state(src)
    before = list(binary.events.values_list("id", flat=True))

    with pytest.raises(TransitionRefused) as excinfo:
        lifecycle.transition(binary, to=to, actor=actor, reason="should not happen")

    binary.refresh_from_db()
    assert binary.state == src
    assert list(binary.events.values_list("id", flat=True)) == before
    assert not BinaryEvent.objects.filter(reason="should not happen").exists()
    message = excinfo.value.message
    assert message == (
        f"The binary is {src} and cannot move to {to}; "
        f"from {src} it can move to: {_moves_text(ALLOWED[src])}."
    )
    assert excinfo.value.current == src
    assert excinfo.value.status == 409
    assert excinfo.value.code == "invalid_state_transition"
    assert isinstance(excinfo.value, Conflict)


@pytest.mark.django_db
def test_it_names_the_final_state_as_having_no_moves(actor):
    binary = binary_in_state(State.DESTROYED)

    with pytest.raises(TransitionRefused, match=r"from destroyed it can move to: none"):
        lifecycle.transition(binary, to=State.UPLOADABLE, actor=actor)


@pytest.mark.django_db
def test_it_refuses_a_move_from_a_state_the_caller_read_before_it_changed(actor):
    binary = binary_in_state(State.UPLOADABLE)
    stale = type(binary).objects.get(pk=binary.pk)
    lifecycle.transition(binary, to=State.HASHABLE, actor=actor)

    # `stale` still says uploadable in memory; the move is decided on the row, not the object.
    with pytest.raises(
        TransitionRefused, match="The binary is hashable and cannot move to hashable"
    ):
        lifecycle.transition(stale, to=State.HASHABLE, actor=actor)
    assert binary.events.filter(to_state=State.HASHABLE).count() == 1


@pytest.mark.django_db
def test_it_records_details_and_sets_fields_in_the_same_move(actor):
    binary = binary_in_state(State.HASHING)

    lifecycle.transition(
        binary,
        to=State.UPLOADABLE,
        actor=actor,
        reason="hash mismatch",
        details={"expected": "a" * 64, "found": "b" * 64},
        set_fields={"last_error": "expected a..., found b..."},
    )

    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.last_error == "expected a..., found b..."
    event = binary.events.order_by("-id").first()
    assert event is not None
    assert event.details == {"expected": "a" * 64, "found": "b" * 64}
    assert (event.from_state, event.to_state) == (State.HASHING, State.UPLOADABLE)


@pytest.mark.django_db
def test_it_records_the_api_key_of_an_api_actor(admin_membership):
    key = ApiKeyFactory(organization=admin_membership.organization, user=admin_membership.user)
    binary = binary_in_state(State.UPLOADABLE)

    lifecycle.transition(binary, to=State.HASHABLE, actor=Actor.for_api_key(key))

    event = binary.events.get(to_state=State.HASHABLE)
    assert event.actor_api_key == key
    assert event.actor_user == admin_membership.user
    assert event.actor_label == f"{admin_membership.user.username} (API key {key.prefix})"


@pytest.mark.django_db(transaction=True)
def test_it_runs_after_commit_work_only_once_the_move_is_committed(actor):
    binary = binary_in_state(State.SIGNABLE)
    calls = []

    lifecycle.transition(
        binary, to=State.DESTROYED, actor=actor, after_commit=lambda: calls.append("ran")
    )

    assert calls == ["ran"]


@pytest.mark.django_db(transaction=True)
def test_it_skips_after_commit_work_when_the_move_is_refused(actor):
    binary = binary_in_state(State.UPLOADABLE)
    calls = []

    with pytest.raises(TransitionRefused):
        lifecycle.transition(
            binary, to=State.SIGNED, actor=actor, after_commit=lambda: calls.append("ran")
        )

    assert calls == []


# --- binary_request_state: what a client (API, console, CLI, admin) may ask for ---------------


@pytest.mark.django_db
@pytest.mark.parametrize(("src", "to"), CLIENT_ALLOWED)
def test_it_lets_a_client_make_each_client_move(src, to, actor):
    binary = binary_in_state(src)

    moved = moves.request_state(binary=binary, to=to, actor=actor, reason="asked")

    assert moved.state == to
    binary.refresh_from_db()
    assert binary.state == to
    event = binary.events.order_by("-id").first()
    assert event is not None
    assert (event.from_state, event.to_state) == (src, to)
    assert event.actor_label == actor.label
    assert event.reason == "asked"


@pytest.mark.django_db
@pytest.mark.parametrize(("src", "to"), CLIENT_REFUSED)
def test_it_refuses_each_move_a_client_may_not_ask_for(src, to, actor):
    binary = binary_in_state(src)
    before = binary.events.count()

    with pytest.raises(TransitionRefused) as excinfo:
        moves.request_state(binary=binary, to=to, actor=actor)

    binary.refresh_from_db()
    assert binary.state == src
    assert binary.events.count() == before
    assert excinfo.value.message == (
        f"The binary is {src} and cannot move to {to}; "
        f"from {src} it can move to: {_moves_text(lifecycle.allowed_client_moves(src))}."
    )


@pytest.mark.django_db
@pytest.mark.parametrize("src", [State.HASHABLE, State.HASHING, State.SIGNABLE, State.SIGNED])
def test_it_treats_asking_for_hashing_when_due_under_way_or_done_as_a_no_op(src, actor):
    # The hosted platform's CLI asks for hashing right after hashable; the verifier may have
    # finished by then.
    binary = binary_in_state(src)
    before = binary.events.count()

    result = moves.request_state(binary=binary, to="hashing", actor=actor)

    assert result.state == src
    binary.refresh_from_db()
    assert binary.state == src
    assert binary.events.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize("src", [State.UPLOADABLE, State.DESTROYED])
def test_it_refuses_asking_for_hashing_from_other_states(src, actor):
    binary = binary_in_state(src)

    with pytest.raises(TransitionRefused, match=f"The binary is {src} and cannot move to hashing"):
        moves.request_state(binary=binary, to="hashing", actor=actor)

    binary.refresh_from_db()
    assert binary.state == src


@pytest.mark.django_db
@pytest.mark.parametrize("bogus", ["bogus", "", "HASHABLE", None, 3, ["hashable"]])
def test_it_refuses_a_state_that_does_not_exist(bogus, actor):
    binary = binary_in_state(State.UPLOADABLE)

    with pytest.raises(InvalidInput) as excinfo:
        moves.request_state(binary=binary, to=bogus, actor=actor)

    assert excinfo.value.field == "state"
    assert excinfo.value.message == (
        "state must be one of uploadable, hashable, hashing, signable, signed, destroyed; "
        f"got {bogus!r}."
    )
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.events.count() == 0


@pytest.mark.django_db
def test_it_refuses_hashable_before_anything_was_uploaded(actor):
    binary = binary_in_state(State.UPLOADABLE)

    with pytest.raises(Conflict):
        moves.request_state(binary=binary, to=State.HASHABLE, actor=actor)

    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.events.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("src", STATES)
def test_it_refuses_signed_without_a_signature(src, actor):
    """signable -> signed happens when a valid signature is attached (DESIGN.md); asking for
    the state must not skip signing, from any state."""
    binary = binary_in_state(src)
    before = binary.events.count()

    with pytest.raises(Conflict) as excinfo:
        moves.request_state(binary=binary, to=State.SIGNED, actor=actor)

    assert excinfo.value.message.startswith(f"The binary is {src}")
    assert excinfo.value.status == 409
    binary.refresh_from_db()
    assert binary.state == src
    assert binary.events.count() == before


def test_it_resets_a_failed_upload_that_is_still_uploadable(actor, version, db):
    from binaries.moves import request_state

    binary = BinaryFactory(artifact_version=version, last_error="part 2 was corrupted")
    BinaryPartFactory(binary=binary)
    before = binary.events.count()

    result = request_state(binary=binary, to=State.UPLOADABLE, actor=actor, reason="retry")
    binary.refresh_from_db()
    assert result.pk == binary.pk

    assert binary.state == State.UPLOADABLE
    assert binary.last_error == ""
    assert binary.parts.count() == 0
    assert binary.events.count() == before + 1
    event = binary.events.order_by("-id").first()
    assert (event.from_state, event.to_state) == (State.UPLOADABLE, State.UPLOADABLE)
    assert event.details == {"parts_removed": 1}
    assert event.reason == "retry: 1 part(s) and their bytes removed."
