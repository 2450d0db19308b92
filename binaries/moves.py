"""The moves a client may ask for (an API PATCH, a console button, an admin action, the CLI):
one short function per move, each performing it through lifecycle.transition() and queueing
its task on commit, and the table that `request_state` looks the asked-for state up in.

Asking for a state the binary is already past or at is sometimes harmless (hashing while
hashable or hashing; signed once signed): the table says where, beside each move.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from binaries import content, lifecycle, signatures, tasks, uploads
from binaries.models import Binary, BinaryPart, State
from peridio_console.accounts.actors import Actor
from peridio_console.core.errors import InvalidInput


def mark_hashable(*, binary: Binary, actor: Actor, reason: str = "") -> Binary:
    """The upload is finished: parts checked, completed in the store, verification queued."""
    parts = uploads.complete(binary)
    return lifecycle.transition(
        binary,
        to=State.HASHABLE,
        actor=actor,
        reason=reason,
        only_from={State.UPLOADABLE},
        set_fields={"upload_id": None, "last_error": ""},
        details={"parts": len(parts), "size": binary.size},
        after_commit=lambda: tasks.enqueue_verification(binary.pk),
    )


# Where a client's request for `hashing` is answered with the binary as it is: hashing is the
# verifier's move, and the hosted platform's CLI asks for it right after `hashable`, when the
# verifier may have finished already.
_UNFINISHED = frozenset({State.UPLOADABLE, State.HASHABLE})

_HASHING_TAKEN_AS_DONE = frozenset({State.HASHABLE, State.HASHING, State.SIGNABLE, State.SIGNED})


def confirm_hashing(*, binary: Binary, actor: Actor, reason: str = "") -> Binary:
    """Hashing is the verifier's move; a client asking for it while it is due, under way or
    done changes nothing."""
    binary.refresh_from_db()
    if binary.state in _HASHING_TAKEN_AS_DONE:
        return binary
    raise _refused(binary, State.HASHING)


def reset(*, binary: Binary, actor: Actor, reason: str = "") -> Binary:
    """Back to uploadable, content deleted. On a binary that is uploadable already (a failed
    upload, as in the guide), its parts and their bytes are thrown away instead."""
    binary.refresh_from_db()
    if binary.state != State.UPLOADABLE:
        return uploads.reset(
            binary=binary,
            actor=actor,
            reason=reason,
            only_from=lifecycle.CLIENT_MOVES[State.UPLOADABLE],
        )
    if uploads.discard_upload(binary, actor=actor, reason=reason or "Upload reset") is None:
        binary.refresh_from_db()
        raise _refused(binary, State.UPLOADABLE)
    return binary


def destroy(*, binary: Binary, actor: Actor, reason: str = "") -> Binary:
    """Content deleted after commit (retried until gone); the record, its signatures and
    events stay for ever.

    An unfinished upload (uploadable, hashable) is discarded the same way, beyond the guide's
    diagram, so that it frees its target: its part rows go in the same transaction (a part
    write meanwhile is not taken), its bytes and any open multipart upload with the content
    (the row keeps `upload_id` until the store confirms, so that the deletion can abort it)."""
    binary.refresh_from_db()
    unfinished = binary.state in _UNFINISHED
    with transaction.atomic():
        parts = BinaryPart.objects.filter(binary=binary)
        removed = parts.count() if unfinished else 0
        destroyed = lifecycle.transition(
            binary,
            to=State.DESTROYED,
            actor=actor,
            reason=reason,
            details={"parts_removed": removed} if removed else None,
            only_from=lifecycle.CLIENT_MOVES[State.DESTROYED],
            # Refused (naming the state it is in) if the binary moved on since it was read.
            guard={"state": binary.state} if unfinished else None,
            set_fields=uploads.NO_PARTS if unfinished else None,
            after_commit=lambda: content.enqueue_discard(binary.pk),
        )
        if unfinished:
            parts.delete()
    return destroyed


def mark_signed(*, binary: Binary, actor: Actor, reason: str = "") -> Binary:
    """Signed needs a live signature; asking again once signed changes nothing (clients of
    the hosted platform do, after signing)."""
    binary.refresh_from_db()
    signatures.require_live_signature_for_signed(binary)
    if binary.state == State.SIGNED:
        return binary
    return lifecycle.transition(
        binary,
        to=State.SIGNED,
        actor=actor,
        reason=reason,
        only_from=lifecycle.CLIENT_MOVES[State.SIGNED],
    )


@dataclass(frozen=True)
class ClientMove:
    perform: Callable[..., Binary]
    # States besides the move's sources (lifecycle.CLIENT_MOVES) where the request is taken:
    # as a no-op, or (uploadable -> uploadable) as a reset of the upload.
    also_from: frozenset[str] = frozenset()


MOVES: dict[str, ClientMove] = {
    State.HASHABLE: ClientMove(mark_hashable),
    State.HASHING: ClientMove(confirm_hashing, _HASHING_TAKEN_AS_DONE),
    State.UPLOADABLE: ClientMove(reset, frozenset({State.UPLOADABLE})),
    State.DESTROYED: ClientMove(destroy),
    State.SIGNED: ClientMove(mark_signed, frozenset({State.SIGNED})),
}


def _refused(binary: Binary, to: str) -> lifecycle.TransitionRefused:
    return lifecycle.TransitionRefused(
        binary.state, to, lifecycle.allowed_client_moves(binary.state)
    )


def _clean_state(to: Any) -> str:
    if to not in State.values:
        raise InvalidInput(
            f"state must be one of {', '.join(State.values)}; got {to!r}.", field="state"
        )
    return str(to)


def check_request(binary: Binary, to: Any) -> None:
    """Refuse an impossible request before anything else in the same request changes."""
    to = _clean_state(to)
    move = MOVES.get(to)
    sources = lifecycle.CLIENT_MOVES.get(to, frozenset()) | (move.also_from if move else set())
    if binary.state not in sources:
        raise _refused(binary, to)


def request_state(*, binary: Binary, to: Any, actor: Actor, reason: str = "") -> Binary:
    """A client's request to move `binary` to the state `to`: the move's own function does it."""
    move = MOVES.get(_clean_state(to))
    if move is None:  # a state only the system moves to (signable)
        binary.refresh_from_db()
        raise _refused(binary, to)
    return move.perform(binary=binary, actor=actor, reason=reason)
