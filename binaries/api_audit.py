"""Download URLs, download counts, and the audit trail (admins) in the API."""

import csv
import io
import itertools
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Query, Router, Schema
from pydantic import AfterValidator, BeforeValidator

from binaries import downloads, selectors, timeline
from binaries.api_auth import ApiContext, api_context, require_role
from binaries.api_schemas import ERRORS, GONE_ERRORS, AuditEventList, DownloadCounts, DownloadUrlOut
from binaries.errors import InvalidInput
from binaries.serializers import iso
from binaries.validation import to_utc
from peridio_console.models import Role

distribution = Router(tags=["downloads"])
audit = Router(tags=["audit"])


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


@distribution.get("/binaries/{prn}/download_url", response={200: DownloadUrlOut, **GONE_ERRORS})
def binary_download_url(request: HttpRequest, prn: str, expires_in: int | None = None) -> dict:
    """A time-limited URL for a signed binary (S3 presigned, CloudFront-signed, or this
    server's own signed URL, which honours HTTP Range so downloads resume)."""
    context = api_context(request)
    binary = selectors.get_binary(context.organization, prn)
    issued = downloads.issue_url(
        binary=binary,
        actor=context.actor.with_ip(_client_ip(request)),
        base_url=request.build_absolute_uri("/"),
        expires_in=expires_in,
    )
    return {"download_url": issued.url, "expires_at": iso(issued.expires_at)}


@distribution.get("/binaries/{prn}/download_counts", response={200: DownloadCounts, **ERRORS})
def binary_download_counts(request: HttpRequest, prn: str, days: int = 30) -> dict:
    """Download URLs issued per day for one binary over the last 7, 30 or 90 days."""
    context = api_context(request)
    binary = selectors.get_binary(context.organization, prn)
    return {
        "download_counts": downloads.daily_counts(context.organization, binary=binary, days=days)
    }


@distribution.get("/download_counts", response={200: DownloadCounts, **ERRORS})
def organization_download_counts(request: HttpRequest, days: int = 30) -> dict:
    """Download URLs issued per day across the organization."""
    context = api_context(request)
    return {"download_counts": downloads.daily_counts(context.organization, days=days)}


RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


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
        since=params.since,
        until=params.until,
    )


@audit.get("/audit_events", response={200: AuditEventList, **ERRORS})
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


EXPORT_COLUMNS = (
    "id",
    "at",
    "action",
    "object_prn",
    "actor",
    "actor_api_key",
    "from_state",
    "to_state",
    "reason",
    "ip",
    "details",
)


def _csv_rows(entries: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for entry in entries:
        row = {**entry, "details": json.dumps(entry["details"], sort_keys=True)}
        writer.writerow(["" if row[c] is None else row[c] for c in EXPORT_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _json_rows(entries: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield '{"audit_events": ['
    for n, entry in enumerate(entries):
        yield ("," if n else "") + json.dumps(entry)
    yield "]}"


# CSV or JSON (the list's shape), as `format` asks.
EXPORT_RESPONSE: dict[str, Any] = {
    "responses": {
        200: {
            "description": "The filtered audit trail, oldest first, as a download.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }
}


@audit.get(
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
    body = _csv_rows(entries) if format == "csv" else _json_rows(entries)
    content_type = "text/csv" if format == "csv" else "application/json"
    response = StreamingHttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-events.{format}"'
    return response
