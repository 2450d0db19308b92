"""The binary lifecycle: one table of moves and the one function that performs them.

Nothing else in the code base writes Binary.state. The moves a client may ask for each have a
function in moves.py that calls transition().
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from binaries.models import Binary, BinaryEvent, State
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditAction
from peridio_console.core.errors import Conflict

# Every move the system may make, from -> {to}.
ALLOWED: dict[str, frozenset[str]] = {
    State.UPLOADABLE: frozenset({State.HASHABLE, State.DESTROYED}),
    State.HASHABLE: frozenset({State.HASHING, State.UPLOADABLE, State.DESTROYED}),
    State.HASHING: frozenset({State.SIGNABLE, State.UPLOADABLE}),
    State.SIGNABLE: frozenset({State.SIGNED, State.UPLOADABLE, State.DESTROYED}),
    State.SIGNED: frozenset({State.DESTROYED}),
    State.DESTROYED: frozenset(),
}

# The moves a client (API, console, CLI) may ask for, to -> {from}. The rest are automatic.
# Each has its one function in moves.py.
CLIENT_MOVES: dict[str, frozenset[str]] = {
    State.HASHABLE: frozenset({State.UPLOADABLE}),
    State.UPLOADABLE: frozenset({State.HASHABLE, State.HASHING, State.SIGNABLE}),
    # Uploadable and hashable too (beyond the guide's diagram): an abandoned upload, or a binary
    # made for the wrong target, must not hold its target for ever.
    State.DESTROYED: frozenset({State.UPLOADABLE, State.HASHABLE, State.SIGNABLE, State.SIGNED}),
    State.SIGNED: frozenset({State.SIGNABLE}),  # only with a valid signature (moves.mark_signed)
}


class TransitionRefused(Conflict):
    code = "invalid_state_transition"

    def __init__(self, current: str, to: str, allowed: frozenset[str] | set[str]):
        moves = ", ".join(sorted(allowed)) if allowed else "none (it is final)"
        super().__init__(
            f"The binary is {current} and cannot move to {to}; "
            f"from {current} it can move to: {moves}."
        )
        self.current = current
        self.to = to


def allowed_client_moves(state: str) -> set[str]:
    return {to for to, sources in CLIENT_MOVES.items() if state in sources}


def transition(
    binary: Binary,
    *,
    to: str,
    actor: Actor,
    reason: str = "",
    details: dict[str, Any] | None = None,
    only_from: frozenset[str] | set[str] | None = None,
    set_fields: dict[str, Any] | None = None,
    guard: dict[str, Any] | None = None,
    after_commit: Callable[[], None] | None = None,
) -> Binary:
    """Move `binary` to `to`, or raise TransitionRefused naming the current state.

    A conditional UPDATE ... WHERE state = <what we read> makes the move race-safe on every
    database: of concurrent attempts exactly one updates the row and writes the event.
    `only_from` narrows the sources (e.g. to the moves a client may ask for).
    `guard` adds conditions the row must still meet (e.g. the hashing run that owns it).
    `after_commit` runs once the move is committed (storage I/O, task enqueues).
    """
    to = State(to)
    with transaction.atomic():
        current = Binary.objects.filter(pk=binary.pk).values_list("state", flat=True).get()
        allowed = set(ALLOWED[current]) if only_from is None or current in only_from else set()
        if to not in allowed:
            shown = allowed_client_moves(current) if only_from is not None else ALLOWED[current]
            raise TransitionRefused(current, to, set(shown))
        now = timezone.now()
        changed = (
            Binary.objects.filter(pk=binary.pk, state=current)
            .filter(**(guard or {}))
            .update(state=to, updated_at=now, **(set_fields or {}))
        )
        if changed != 1:
            current = Binary.objects.filter(pk=binary.pk).values_list("state", flat=True).get()
            shown = allowed_client_moves(current) if only_from is not None else ALLOWED[current]
            raise TransitionRefused(current, to, set(shown))
        _write_event(binary, actor, current, to, reason=reason, details=details, at=now)
        if after_commit is not None:
            transaction.on_commit(after_commit)
    binary.refresh_from_db()
    return binary


def _write_event(
    binary: Binary,
    actor: Actor,
    from_state: str,
    to_state: str,
    *,
    action: str | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """The binary's event; a move's action is binary.<to state>, its before/after the state."""
    if from_state != to_state:
        changes = {"state": [from_state or None, to_state], **(details or {}).get("changes", {})}
        details = {**(details or {}), "changes": changes}
    BinaryEvent.objects.create(
        binary_id=binary.pk,
        organization_id=binary.organization_id,
        action=AuditAction(action or f"binary.{to_state}"),
        **actor.event_fields(),
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        details=details or {},
        at=at or timezone.now(),
    )


def record_creation(binary: Binary, *, actor: Actor) -> None:
    """The (new) -> uploadable event, written in the creating transaction."""
    created = {"target": binary.target, "hash": binary.hash, "size": binary.size}
    _write_event(
        binary,
        actor,
        "",
        State.UPLOADABLE,
        action=AuditAction.BINARY_CREATED,
        details={"changes": {f: [None, v] for f, v in created.items() if v is not None}},
        at=binary.created_at,
    )


def record_event(
    binary: Binary, *, actor: Actor, action: AuditAction, reason: str, details: dict[str, Any]
) -> None:
    """An event that is not a move (an edit, a re-queue, an integrity failure, an upload
    cleaned): from = to = current."""
    state = Binary.objects.filter(pk=binary.pk).values_list("state", flat=True).get()
    _write_event(binary, actor, state, state, action=action, reason=reason, details=details)
