"""Domain errors: each carries one sentence a user can act on, the same in API, CLI and console.

Also the one translation of a database failure into words a client can act on.
"""

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.core import exceptions as django_exceptions
from django.db import IntegrityError, transaction


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    status = 400
    code = "invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Gone(DomainError):
    status = 410
    code = "gone"


class PermissionDenied(DomainError, django_exceptions.PermissionDenied):
    """A role too low for the action: the API answers 403 in its error shape, the console
    shows its 403 page (Django handles its own PermissionDenied), with the same sentence."""

    status = 403
    code = "forbidden"


# PostgreSQL's answers when concurrent transactions collide: a deadlock was broken by rolling
# this one back, or a serializable transaction could not be ordered. Nothing was written.
COLLISION_SQLSTATES = frozenset({"40P01", "40001"})
# The disk under the database is full: PostgreSQL's disk_full, SQLite's SQLITE_FULL.
DISK_FULL_SQLSTATE = "53100"


@dataclass(frozen=True)
class DatabaseTrouble:
    status: int
    code: str
    message: str
    retry_after: str | None  # None: waiting will not help


def _disk_full(exc: Exception) -> bool:
    cause = exc.__cause__
    return (
        getattr(cause, "sqlstate", None) == DISK_FULL_SQLSTATE
        or getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        or "database or disk is full" in str(exc)  # SQLite's words, whatever wraps them
    )


def database_trouble(exc: Exception) -> DatabaseTrouble:
    """What to tell a client whose request failed on a database error (the API and the
    console say the same)."""
    if _disk_full(exc):
        return DatabaseTrouble(
            507,
            "insufficient_storage",
            "The server's disk is full, so the database could not record this; nothing was "
            "changed. Free space on the server, then send the request again.",
            None,
        )
    if getattr(exc.__cause__, "sqlstate", None) in COLLISION_SQLSTATES:
        return DatabaseTrouble(
            503,
            "busy",
            "Another request was changing the same records at that moment; nothing was "
            "changed. Send the request again.",
            "1",
        )
    return DatabaseTrouble(
        503,
        "unavailable",
        "The database is unreachable right now; nothing was changed. Try again in a moment.",
        "5",
    )


@contextmanager
def conflict_on_integrity_error(conflict: "Conflict | Callable[[], Conflict]") -> Iterator[None]:
    """Run the block in its own transaction; a unique or protecting row it trips over (a
    duplicate name, a row that arrived meanwhile) becomes `conflict`, or what `conflict()`
    returns when the message needs a query made after the failure."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise (conflict if isinstance(conflict, Conflict) else conflict()) from None
