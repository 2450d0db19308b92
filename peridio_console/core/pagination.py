"""Keyset pagination on (created_at, id) with opaque, signed cursors.

A page never uses OFFSET: it asks for rows strictly after the last row seen, so page 500 costs
what page 1 costs, and rows inserted between two requests are neither skipped nor repeated.
The cursor is `<urlsafe base64 of JSON>.<signature>`; a cursor that was altered, or issued for
another list, is refused with a 400.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.core import signing
from django.db.models import Model, Q, QuerySet

from peridio_console.core.errors import InvalidInput

M = TypeVar("M", bound=Model)

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
ORDERS = ("asc", "desc")
_SIGNER = signing.Signer(salt="binaries.pagination", sep=".")  # the salt cursors were issued under


@dataclass(frozen=True)
class Cursor:
    list_name: str
    order: str
    created_at: datetime
    id: int


def bad_page(detail: str) -> InvalidInput:
    return InvalidInput(
        f"page must be a next_page value returned by this list; {detail}",
        field="page",
        code="invalid_page",
    )


def sign_cursor(list_name: str, values: dict[str, Any]) -> str:
    """The one cursor codec: `values` and the list they belong to, signed."""
    return _SIGNER.sign_object({"l": list_name, **values})


def read_cursor(raw: str, list_name: str) -> dict[str, Any]:
    """The values of a cursor this server signed for `list_name`; a 400 for any other."""
    try:
        payload = _SIGNER.unsign_object(raw)
    except (signing.BadSignature, ValueError, UnicodeError):
        raise bad_page("this one was altered or truncated.") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("l"), str):
        raise bad_page("this one is not a cursor.")
    if payload["l"] != list_name:
        raise bad_page(f"this one belongs to the {payload['l']} list.")
    return payload


def encode_cursor(cursor: Cursor) -> str:
    values = {"o": cursor.order, "t": cursor.created_at.isoformat(), "i": cursor.id}
    return sign_cursor(cursor.list_name, values)


def decode_cursor(raw: str, list_name: str) -> Cursor:
    payload = read_cursor(raw, list_name)
    try:
        return Cursor(
            list_name=list_name,
            order=str(payload["o"]),
            created_at=datetime.fromisoformat(payload["t"]),
            id=int(payload["i"]),
        )
    except (KeyError, TypeError, ValueError):
        raise bad_page("this one is not a cursor.") from None


def _after(cursor: Cursor) -> Q:
    # The redundant >= / <= bound lets the planner start an index range scan at the cursor.
    if cursor.order == "asc":
        return Q(created_at__gte=cursor.created_at) & (
            Q(created_at__gt=cursor.created_at) | Q(id__gt=cursor.id)
        )
    return Q(created_at__lte=cursor.created_at) & (
        Q(created_at__lt=cursor.created_at) | Q(id__lt=cursor.id)
    )


def resolve_order(order: str | None, cursor: Cursor | None) -> str:
    """The cursor fixes the order; an explicit order that contradicts it is an error."""
    if cursor is None:
        return order or "asc"
    if order is not None and order != cursor.order:
        raise bad_page(f"it was issued for order={cursor.order}, not order={order}.")
    return cursor.order


def keyset_page(
    queryset: QuerySet[M],
    *,
    list_name: str,
    limit: int = DEFAULT_LIMIT,
    order: str | None = None,
    page: str | None = None,
) -> tuple[list[M], str | None]:
    """One page of `queryset` ordered by (created_at, id), and the cursor of the next or None."""
    cursor = decode_cursor(page, list_name) if page else None
    order = resolve_order(order, cursor)
    if cursor is not None:
        queryset = queryset.filter(_after(cursor))
    prefix = "" if order == "asc" else "-"
    rows = list(queryset.order_by(f"{prefix}created_at", f"{prefix}id")[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last: Any = rows[-1]
    next_cursor = Cursor(list_name, order, last.created_at, last.pk)
    return rows, encode_cursor(next_cursor)
