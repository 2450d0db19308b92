"""The audit trail: a binary's own events (BinaryEvent) and everything else (AuditEvent) as one
list, filtered and keyset-paged on (at, kind, id), newest first by default.

Two tables read as one: each is read along its (organization, [filter,] at, id) index for one
page more than asked, and the two short lists are merged. Every row carries its action, written
when it happened (AuditAction), so a filter is an index lookup, never a guess."""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F, Q, QuerySet

from binaries.models import Binary, BinaryEvent
from binaries.serializers import AuditEventOut, iso
from peridio_console.accounts.models import AuditAction, AuditEvent, EventSource, Organization
from peridio_console.core.errors import InvalidInput
from peridio_console.core.pagination import bad_page, read_cursor, sign_cursor
from peridio_console.core.prn import MalformedPRN, format_prn, parse_prn

BINARY_EVENT, AUDIT_EVENT = 0, 1
TIMELINE = "audit_events"  # the list its cursors belong to


@dataclass(frozen=True)
class Filters:
    action: str | None = None
    object_prn: str | None = None
    actor: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _checked(filters: Filters) -> Filters:
    """Refuse an action or a source the trail does not know, naming the ones it does."""
    if filters.action and filters.action not in AuditAction.values:
        raise InvalidInput(
            f"action must be one of {', '.join(AuditAction.values)}; got {filters.action!r}.",
            field="action",
        )
    if filters.source and filters.source not in EventSource.values:
        raise InvalidInput(
            f"source must be one of {', '.join(EventSource.values)}; got {filters.source!r}.",
            field="source",
        )
    return filters


def _binary_events(organization: Organization, filters: Filters) -> QuerySet[BinaryEvent]:
    events = BinaryEvent.objects.filter(organization=organization)
    if filters.object_prn:
        try:
            prn = parse_prn(filters.object_prn)
        except MalformedPRN as exc:
            raise InvalidInput(f"object: {exc}", field="object") from None
        # The binary's id first: filtering on it reads the (binary, at, id) index, where a
        # join on its uuid walks the organization's whole trail.
        binary = None
        if prn.type == "binary" and prn.id:
            found = Binary.objects.filter(organization=organization, uuid=prn.id)
            binary = found.values_list("pk", flat=True).first()
        events = events.filter(binary_id=binary) if binary is not None else events.none()
    if filters.action:
        events = events.filter(action=filters.action)
    return _common(events, organization, filters)


def _audit_events(organization: Organization, filters: Filters) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(organization=organization)
    if filters.object_prn:
        events = events.filter(object_prn=filters.object_prn)
    if filters.action:
        events = events.filter(action=filters.action)
    return _common(events, organization, filters)


def _actor(organization: Organization, actor: str) -> Q:
    """A member's username (their events from the console and through their API keys), or an
    actor exactly as shown (\"system: janitor\", a former member's name)."""
    user = (
        get_user_model()
        .objects.filter(username__iexact=actor, memberships__organization=organization)
        .values_list("pk", flat=True)
        .first()
    )
    return Q(actor_user_id=user) if user is not None else Q(actor_label=actor)


def _common(events: Any, organization: Organization, filters: Filters) -> Any:
    if filters.actor:
        events = events.filter(_actor(organization, filters.actor))
    if filters.source:
        events = events.filter(source=filters.source)
    if filters.since:
        events = events.filter(at__gte=filters.since)
    if filters.until:
        events = events.filter(at__lt=filters.until)
    return events


def _before(kind: int, cursor: tuple[datetime, int, int], order: str) -> Q:
    """The rows after the cursor. The leading at <= (or >=) bound is what the index range
    uses; the OR only sorts out the rows at the cursor's own instant (without it PostgreSQL
    reads the index from its start on every page)."""
    at, ckind, cid = cursor
    if order == "desc":
        same_at = Q(id__lt=cid) if kind == ckind else (Q() if kind < ckind else Q(pk__in=[]))
        return Q(at__lte=at) & (Q(at__lt=at) | (Q(at=at) & same_at))
    same_at = Q(id__gt=cid) if kind == ckind else (Q() if kind > ckind else Q(pk__in=[]))
    return Q(at__gte=at) & (Q(at__gt=at) | (Q(at=at) & same_at))


# What an entry shows of each kind of row, read as values (no model instances: a page is
# built per request, an export ten million times).
COMMON = ("id", "at", "action", "source", "actor_label", "ip", "user_agent", "details")
BINARY_VALUES = (*COMMON, "from_state", "to_state", "reason")
AUDIT_VALUES = (*COMMON, "object_prn")
JOINED = {"key_prefix": F("actor_api_key__prefix")}


def entry(kind: int, row: dict[str, Any], organization_uuid: Any) -> AuditEventOut:
    common = {
        "action": row["action"],
        "source": row["source"] or None,
        "at": iso(row["at"]),
        "actor": row["actor_label"],
        "actor_api_key": row["key_prefix"],
        "ip": row["ip"],
        "user_agent": row["user_agent"],
        "details": row["details"],
    }
    if kind == BINARY_EVENT:
        return AuditEventOut.model_construct(
            id=f"be_{row['id']}",
            object_prn=format_prn(organization_uuid, "binary", row["binary_uuid"]),
            from_state=row["from_state"] or None,
            to_state=row["to_state"],
            reason=row["reason"],
            **common,
        )
    return AuditEventOut.model_construct(
        id=f"ae_{row['id']}",
        object_prn=row["object_prn"],
        from_state=None,
        to_state=None,
        reason="",
        **common,
    )


def _decode(page: str) -> tuple[str, tuple[datetime, int, int]]:
    data = read_cursor(page, TIMELINE)
    try:
        return data["o"], (datetime.fromisoformat(data["t"]), int(data["k"]), int(data["i"]))
    except (KeyError, TypeError, ValueError):
        raise bad_page("this one is not a cursor.") from None


def page(
    organization: Organization,
    filters: Filters,
    *,
    limit: int = 50,
    order: str = "desc",
    cursor_text: str | None = None,
) -> tuple[list[AuditEventOut], str | None]:
    if order not in ("asc", "desc"):
        raise InvalidInput(f"order must be asc or desc; got {order!r}.", field="order")
    _checked(filters)
    cursor = None
    if cursor_text:
        order, cursor = _decode(cursor_text)
    prefix = "-" if order == "desc" else ""
    rows: list[tuple[datetime, int, int, Any]] = []
    for kind, queryset in (
        (
            BINARY_EVENT,
            _binary_events(organization, filters).values(
                *BINARY_VALUES, binary_uuid=F("binary__uuid"), **JOINED
            ),
        ),
        (AUDIT_EVENT, _audit_events(organization, filters).values(*AUDIT_VALUES, **JOINED)),
    ):
        if cursor is not None:
            queryset = queryset.filter(_before(kind, cursor, order))
        for row in queryset.order_by(f"{prefix}at", f"{prefix}id")[: limit + 1]:
            rows.append((row["at"], kind, row["id"], row))
    rows.sort(key=lambda r: (r[0], r[1], r[2]), reverse=order == "desc")
    shown = rows[:limit]
    next_page = None
    if len(rows) > limit and shown:
        at, kind, pk, _ = shown[-1]
        next_page = sign_cursor(TIMELINE, {"o": order, "t": at.isoformat(), "k": kind, "i": pk})
    return [entry(kind, event, organization.uuid) for _, kind, _, event in shown], next_page


def latest_binary_events(organization: Organization, limit: int) -> list[AuditEventOut]:
    """The newest lifecycle events of the organization's binaries (what a non-admin may see
    of the trail), newest first."""
    rows = (
        _binary_events(organization, Filters())
        .values(*BINARY_VALUES, binary_uuid=F("binary__uuid"), **JOINED)
        .order_by("-at", "-id")[:limit]
    )
    return [entry(BINARY_EVENT, row, organization.uuid) for row in rows]


def iterate(organization: Organization, filters: Filters) -> Iterator[dict[str, Any]]:
    """Every entry of the filtered view, oldest first, fetched a page at a time, as the dicts
    the exports write."""
    cursor: str | None = None
    first = True
    while first or cursor:
        first = False
        entries, cursor = page(organization, filters, limit=500, order="asc", cursor_text=cursor)
        # With DEBUG on (make run), Django keeps the SQL of a request's last 9,000 queries: a
        # 10,000,000-event export grew by 100 MB before this.
        connection.queries_log.clear()
        yield from (event.model_dump() for event in entries)


# --- Exports: the same entries as CSV or JSON, streamed a row at a time --------------------

EXPORT_COLUMNS = (
    "id",
    "at",
    "action",
    "object_prn",
    "actor",
    "actor_api_key",
    "source",
    "ip",
    "user_agent",
    "from_state",
    "to_state",
    "reason",
    "details",
)


# A spreadsheet runs a cell that begins with one of these as a formula (OWASP's CSV-injection
# rule); a leading single quote makes it text, every character of it kept.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_LEADS) else text


def csv_rows(entries: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for entry in entries:
        row = {**entry, "details": json.dumps(entry["details"], sort_keys=True)}
        writer.writerow([_csv_cell(row[c]) for c in EXPORT_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def json_rows(entries: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield '{"audit_events": ['
    for n, entry in enumerate(entries):
        yield ("," if n else "") + json.dumps(entry)
    yield "]}"
