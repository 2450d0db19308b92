"""The audit trail: one list of lifecycle moves and other events, and its exports."""

import itertools
import re
from datetime import datetime
from typing import Annotated, Any

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Query, Router, Schema
from pydantic import AfterValidator, BeforeValidator

from binaries import timeline
from binaries.api.auth import ApiContext, api_context, require_role
from binaries.api.schemas import ERRORS, AuditEventList
from binaries.validation import to_utc
from peridio_console.accounts.models import Role
from peridio_console.core.errors import InvalidInput

RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)

router = Router(tags=["audit"])


def _rfc3339(value: Any) -> Any:
    """since/until are date-times as documented (RFC 3339: date, time and offset). pydantic
    would also take a bare number (seconds since 1970), a date alone or a time without an
    offset, each of which means something else to someone."""
    if isinstance(value, str) and not RFC3339.fullmatch(value):
        raise ValueError(
            f"must be a date-time with a time zone such as 2024-01-15T10:30:00Z, not {value!r}"
        )
    return value


IsoDateTime = Annotated[datetime | None, BeforeValidator(_rfc3339), AfterValidator(to_utc)]


class AuditParams(Schema):
    action: str | None = None
    object: str | None = None
    actor: str | None = None
    source: str | None = None
    since: IsoDateTime = None
    until: IsoDateTime = None
    limit: int = 50
    order: str = "desc"
    page: str | None = None


def _admin(request: HttpRequest) -> ApiContext:
    context = api_context(request)
    require_role(context, Role.ADMIN, "reading the audit trail")
    return context


def _filters(params: AuditParams) -> timeline.Filters:
    return timeline.Filters(
        action=params.action or None,
        object_prn=params.object or None,
        actor=params.actor or None,
        source=params.source or None,
        since=params.since,
        until=params.until,
    )


@router.get("/audit_events", response={200: AuditEventList, **ERRORS})
def list_audit_events(request: HttpRequest, params: Query[AuditParams]) -> dict:
    """Every lifecycle move and every other audited action (download URLs issued, signing
    keys and signatures added or removed, API keys, memberships), newest first."""
    context = _admin(request)
    if not 1 <= params.limit <= 500:
        raise InvalidInput(f"limit must be from 1 to 500; got {params.limit}.", field="limit")
    entries, next_page = timeline.page(
        context.organization,
        _filters(params),
        limit=params.limit,
        order=params.order,
        cursor_text=params.page,
    )
    return {"audit_events": entries, "next_page": next_page}


# CSV or JSON (the list's shape), as `format` asks.
EXPORT_RESPONSE: dict[str, Any] = {
    "responses": {
        200: {
            "description": "The filtered audit trail, oldest first, as a download.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }
}


@router.get(
    "/audit_events/export",
    response={200: AuditEventList, **ERRORS},
    openapi_extra=EXPORT_RESPONSE,
)
def export_audit_events(
    request: HttpRequest, params: Query[AuditParams], format: str = "csv"
) -> StreamingHttpResponse:
    """The whole filtered view (oldest first) as CSV or JSON, streamed."""
    context = _admin(request)
    if format not in ("csv", "json"):
        raise InvalidInput(f"format must be csv or json; got {format!r}.", field="format")
    entries = timeline.iterate(context.organization, _filters(params))
    # The first entry now: a filter the trail refuses (an object that is not a PRN...) must
    # be a 400 here, not an error in the middle of a 200 already on its way.
    first = next(entries, None)
    if first is not None:
        entries = itertools.chain([first], entries)
    body = timeline.csv_rows(entries) if format == "csv" else timeline.json_rows(entries)
    content_type = "text/csv" if format == "csv" else "application/json"
    response = StreamingHttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-events.{format}"'
    return response
