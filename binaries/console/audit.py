"""The audit trail (admins): the timeline, destroyed binaries, and exports."""

import json
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from binaries import timeline
from binaries.console.common import (
    PAGE_SIZE,
    admin,
    binary_links,
    query_with,
)
from binaries.console.forms import (
    AuditFilterForm,
)
from peridio_console.accounts.models import Membership
from peridio_console.core.errors import DomainError
from peridio_console.core.forms import add_domain_error


def _audit_filters(
    request: HttpRequest, action: str | None = None
) -> tuple[AuditFilterForm, timeline.Filters | None]:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    return form, timeline.Filters(
        action=action or data["action"] or None,
        object_prn=data["object"] or None,
        actor=data["actor"] or None,
        source=data["source"] or None,
        since=data["since"],
        until=data["until"],
    )


def _timeline_page(
    request: HttpRequest, membership: Membership, template: str, action: str | None = None
) -> HttpResponse:
    form, filters = _audit_filters(request, action)
    entries: list[dict[str, Any]] = []
    next_page = None
    if filters is not None:
        try:
            shown, next_page = timeline.page(
                membership.organization,
                filters,
                limit=PAGE_SIZE * 2,
                cursor_text=form.cleaned_data["page"] or None,
            )
            entries = [entry.model_dump() for entry in shown]
        except DomainError as exc:
            add_domain_error(form, exc, {"object": "object", "page": "page"})
    binaries = binary_links(membership, entries)
    for entry in entries:
        entry["binary"] = binaries.get(entry["object_prn"])
        entry["when"] = f"{datetime.fromisoformat(entry['at']):%Y-%m-%d %H:%M:%S}"
        details = entry["details"]
        entry["details_text"] = json.dumps(details, sort_keys=True) if details else ""
    export = query_with(request, page=None)
    if action:
        export = query_with(request, page=None, action=action)
    context = {
        "form": form,
        "entries": entries,
        "next_query": query_with(request, page=next_page) if next_page else "",
        "export_query": export,
    }
    return render(request, template, context)


@require_GET
@login_required
def audit(request: HttpRequest) -> HttpResponse:
    membership = admin(request, "reading the audit trail")
    return _timeline_page(request, membership, "console/audit.html")


@require_GET
@login_required
def audit_destroyed(request: HttpRequest) -> HttpResponse:
    """Which binaries were destroyed, by whom, when and why."""
    membership = admin(request, "reading the audit trail")
    return _timeline_page(request, membership, "console/audit_destroyed.html", "binary.destroyed")


@require_GET
@login_required
def audit_export(request: HttpRequest, format: str) -> HttpResponse | StreamingHttpResponse:
    """The whole filtered view, oldest first, streamed as CSV or JSON (same as the API's)."""
    membership = admin(request, "exporting the audit trail")
    form, filters = _audit_filters(request)
    if filters is None:
        return HttpResponse(
            "The filters are not valid: " + form.errors.as_text(),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    try:
        timeline.page(membership.organization, filters, limit=1)  # refuse bad filters up front
    except DomainError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    entries = timeline.iterate(membership.organization, filters)
    body = timeline.csv_rows(entries) if format == "csv" else timeline.json_rows(entries)
    content_type = "text/csv" if format == "csv" else "application/json"
    response = StreamingHttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-events.{format}"'
    return response
