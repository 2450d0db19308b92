"""The console's pages: artifacts, versions, binaries, signing keys and the audit trail.

Every page is scoped to the organization the user works in (another organization's objects
are 'not found'); every write re-checks the role, whatever buttons the page showed.
"""

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from binaries import (
    downloads,
    lifecycle,
    selectors,
    serializers,
    services,
    signatures,
    timeline,
)
from binaries.api_audit import _csv_rows, _json_rows
from binaries.errors import DomainError
from binaries.forms import (
    ArtifactForm,
    ArtifactVersionForm,
    AuditFilterForm,
    BinaryFilterForm,
    BinaryForm,
    DestroyForm,
    ReasonForm,
    SignatureForm,
    SigningKeyForm,
    add_domain_error,
)
from binaries.models import Artifact, ArtifactVersion, Binary, BinaryPart, SigningKey, State
from binaries.pagination import keyset_page
from binaries.validation import STANDARD_TARGETS
from peridio_console.models import Membership, Role, role_allows
from peridio_console.prn import MalformedPRN, parse_prn
from peridio_console.views import console_actor, membership_or_404, require_role

PAGE_SIZE = 25
POLLING_STATES = (State.HASHABLE, State.HASHING)
AUDIT_ACTIONS = (
    "binary.created",
    "binary.hashable",
    "binary.hashing",
    "binary.signable",
    "binary.signed",
    "binary.uploadable",
    "binary.destroyed",
    "binary.requeued",
    "binary.integrity_failed",
    "binary_signature.created",
    "binary_signature.deleted",
    "download_url.issued",
    "signing_key.created",
    "signing_key.revoked",
    "api_key.created",
    "api_key.revoked",
    "membership.added",
    "membership.changed",
    "membership.removed",
)


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _writer(request: HttpRequest, doing: str) -> Membership:
    membership = membership_or_404(request)
    require_role(membership, Role.ENGINEER, doing)
    return membership


def _admin(request: HttpRequest, doing: str) -> Membership:
    membership = membership_or_404(request)
    require_role(membership, Role.ADMIN, doing)
    return membership


def _get_artifact_for_user(request: HttpRequest, artifact_id: UUID) -> Artifact:
    organization = membership_or_404(request).organization
    return get_object_or_404(selectors.artifacts(organization), uuid=artifact_id)


def _get_version_for_user(request: HttpRequest, version_id: UUID) -> ArtifactVersion:
    organization = membership_or_404(request).organization
    return get_object_or_404(selectors.artifact_versions(organization), uuid=version_id)


def _get_binary_for_user(request: HttpRequest, binary_id: UUID) -> Binary:
    organization = membership_or_404(request).organization
    return get_object_or_404(selectors.binaries(organization), uuid=binary_id)


def _get_signing_key_for_user(request: HttpRequest, key_id: UUID) -> SigningKey:
    organization = membership_or_404(request).organization
    return get_object_or_404(
        SigningKey.objects.select_related("organization"), organization=organization, uuid=key_id
    )


def _page(request: HttpRequest, queryset: Any, list_name: str) -> tuple[list, str | None, str]:
    """One page, newest first, the next cursor, and the error of a bad cursor ('' if none)."""
    try:
        rows, next_page = keyset_page(
            queryset,
            list_name=list_name,
            limit=PAGE_SIZE,
            order="desc",
            page=request.GET.get("page") or None,
        )
    except DomainError as exc:
        return [], None, exc.message
    return rows, next_page, ""


def _query_with(request: HttpRequest, **changes: str | None) -> str:
    query = request.GET.copy()
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return query.urlencode()


# --- Artifacts and versions ---------------------------------------------------------------


def _render_artifacts(request: HttpRequest, form: ArtifactForm, status: int = 200) -> HttpResponse:
    organization = membership_or_404(request).organization
    rows, next_page, error = _page(request, selectors.artifacts(organization), "console.artifacts")
    context = {
        "artifacts": rows,
        "next_query": _query_with(request, page=next_page) if next_page else "",
        "page_error": error,
        "form": form,
    }
    return render(request, "console/artifact_list.html", context, status=status)


@require_GET
@login_required
def artifact_list(request: HttpRequest) -> HttpResponse:
    return _render_artifacts(request, ArtifactForm())


@require_POST
@login_required
def artifact_create(request: HttpRequest) -> HttpResponse:
    membership = _writer(request, "creating artifacts")
    form = ArtifactForm(request.POST)
    if form.is_valid():
        try:
            artifact = services.artifact_create(
                organization=membership.organization, **form.cleaned_data
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Artifact {artifact.name} created.")
            return redirect("console:artifact_detail", artifact.uuid)
    return _render_artifacts(request, form)


def _render_artifact(
    request: HttpRequest, artifact: Artifact, form: ArtifactVersionForm
) -> HttpResponse:
    versions = selectors.artifact_version_list(artifact.organization, artifact=artifact)
    rows, next_page, error = _page(request, versions, "console.versions")
    context = {
        "artifact": artifact,
        "metadata": json.dumps(artifact.custom_metadata, indent=2, sort_keys=True),
        "versions": rows,
        "next_query": _query_with(request, page=next_page) if next_page else "",
        "page_error": error,
        "form": form,
    }
    return render(request, "console/artifact_detail.html", context)


@require_GET
@login_required
def artifact_detail(request: HttpRequest, artifact_id: UUID) -> HttpResponse:
    artifact = _get_artifact_for_user(request, artifact_id)
    return _render_artifact(request, artifact, ArtifactVersionForm())


@require_POST
@login_required
def artifact_version_create(request: HttpRequest, artifact_id: UUID) -> HttpResponse:
    _writer(request, "creating artifact versions")
    artifact = _get_artifact_for_user(request, artifact_id)
    form = ArtifactVersionForm(request.POST)
    if form.is_valid():
        try:
            version = services.artifact_version_create(artifact=artifact, **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Version {version.version} created.")
            return redirect("console:version_detail", version.uuid)
    return _render_artifact(request, artifact, form)


@require_GET
@login_required
def version_detail(request: HtmxHttpRequest, version_id: UUID) -> HttpResponse:
    """The version's binaries: filters, the API's search language, and cursor paging."""
    version = _get_version_for_user(request, version_id)
    filters = BinaryFilterForm(request.GET)
    rows: list[Binary] = []
    next_page, error = None, ""
    if filters.is_valid():
        data = filters.cleaned_data
        try:
            queryset = selectors.binary_list(
                version.organization,
                artifact_version=version,
                target=data["target"] or None,
                state=data["state"] or None,
                search=data["search"] or None,
            )
        except DomainError as exc:
            add_domain_error(filters, exc)
        else:
            rows, next_page, error = _page(request, queryset, "console.binaries")
    context = {
        "version": version,
        "artifact": version.artifact,
        "filters": filters,
        "binaries": rows,
        "next_query": _query_with(request, page=next_page) if next_page else "",
        "first_query": _query_with(request, page=None) if request.GET.get("page") else "",
        "page_error": error,
    }
    template = "console/version_detail.html"
    if request.htmx and not request.htmx.boosted:
        template += "#binaries-table"
    return render(request, template, context)


# --- Creating a binary --------------------------------------------------------------------


def _render_create(request: HttpRequest, version: ArtifactVersion, form: BinaryForm):
    context = {
        "version": version,
        "artifact": version.artifact,
        "form": form,
        "standard_targets": STANDARD_TARGETS,
    }
    return render(request, "console/binary_create.html", context)


@require_GET
@login_required
def binary_new(request: HttpRequest, version_id: UUID) -> HttpResponse:
    version = _get_version_for_user(request, version_id)
    return _render_create(request, version, BinaryForm())


@require_POST
@login_required
def binary_create(request: HttpRequest, version_id: UUID) -> HttpResponse:
    """Without JavaScript the form creates the record; the uploader adds hash, size, bytes."""
    _writer(request, "creating binaries")
    version = _get_version_for_user(request, version_id)
    form = BinaryForm(request.POST)
    if form.is_valid():
        try:
            binary = services.binary_create(
                artifact_version=version, actor=console_actor(request), **form.cleaned_data
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(
                request,
                f"Binary {binary.target} created. Upload its content with the uploader or "
                "`peridio binaries upload`.",
            )
            return redirect("console:binary_detail", binary.uuid)
    return _render_create(request, version, form)


# --- One binary ---------------------------------------------------------------------------


def _progress(binary: Binary) -> dict[str, Any]:
    size = binary.size or 0
    done = min(binary.bytes_hashed, size) if size else binary.bytes_hashed
    return {
        "binary": binary,
        "polling": binary.state in POLLING_STATES,
        "bytes_hashed": done,
        "percent": (done * 100 // size) if size else (100 if binary.state == State.SIGNABLE else 0),
    }


CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 600, 120, 16


def _download_chart(binary: Binary) -> dict[str, Any]:
    """Download URLs issued per day over 30 days, as bar geometry for an inline SVG."""
    counts = downloads.daily_counts(binary.organization, binary=binary, days=30)
    highest = max(day["count"] for day in counts)
    slot = CHART_WIDTH / len(counts)
    bars = []
    for i, day in enumerate(counts):
        height = round(day["count"] / (highest or 1) * (CHART_HEIGHT - CHART_TOP), 1)
        bars.append(
            {
                **day,
                "x": round(i * slot + 1, 1),
                "width": round(slot - 2, 1),
                "y": round(CHART_HEIGHT - height, 1),
                "height": height,
            }
        )
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "total": sum(day["count"] for day in counts),
        "highest": highest,
        "first": counts[0]["date"],
        "last": counts[-1]["date"],
    }


def _detail_context(request: HttpRequest, binary: Binary, **extra: Any) -> dict[str, Any]:
    membership = membership_or_404(request)
    moves = lifecycle.allowed_client_moves(binary.state)
    can_write = role_allows(membership.role, Role.ENGINEER)
    refusal = downloads.refusal(binary) if binary.state == State.SIGNED else None
    context: dict[str, Any] = {
        **_progress(binary),
        "artifact": binary.artifact_version.artifact,
        "version": binary.artifact_version,
        "record": json.dumps(serializers.binary_data(binary), indent=2),
        "metadata": json.dumps(binary.custom_metadata, indent=2, sort_keys=True),
        "parts": BinaryPart.objects.filter(binary=binary).order_by("index"),
        "signatures": list(binary.signatures.all()),
        "events": binary.events.order_by("at", "id"),
        "can_reset": can_write and State.UPLOADABLE in moves,
        "can_destroy": can_write and State.DESTROYED in moves,
        # Signable -> signed is the move; a signed binary takes more (e.g. after a key revoke).
        "can_sign": can_write and binary.state in signatures.SIGNABLE_STATES,
        "can_download": binary.state == State.SIGNED and refusal is None,
        "download_refusal": refusal.args[0] if refusal else "",
        "chart": _download_chart(binary),
        "reset_form": ReasonForm(),
        "destroy_form": DestroyForm(target=binary.target),
        "sign_form": SignatureForm(organization=binary.organization),
        "download": None,
    }
    context.update(extra)
    return context


def _binary_page(request: HttpRequest, binary: Binary, **extra: Any) -> HttpResponse:
    return render(request, "console/binary_detail.html", _detail_context(request, binary, **extra))


@require_GET
@login_required
def binary_detail(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    return _binary_page(request, _get_binary_for_user(request, binary_id))


@require_GET
@login_required
def binary_progress(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    """The hashing progress partial, polled every second while the binary is being verified."""
    binary = _get_binary_for_user(request, binary_id)
    context = _progress(binary)
    if context["polling"]:
        return render(request, "console/binary_detail.html#progress", context)
    # Done (or reset): stop polling, and reload so the actions, record and timeline catch up.
    html = render_to_string("console/binary_detail.html#progress", context, request=request)
    response = HttpResponseStopPolling(html)
    response["HX-Refresh"] = "true"
    return response


def _back(binary: Binary) -> HttpResponse:
    return redirect("console:binary_detail", binary.uuid)


@require_POST
@login_required
def binary_reset(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    _writer(request, "resetting binaries")
    binary = _get_binary_for_user(request, binary_id)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"].strip() if form.is_valid() else ""
    try:
        services.binary_request_state(
            binary=binary, to=State.UPLOADABLE, actor=console_actor(request), reason=reason
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The binary is uploadable again; parts and content deleted.")
    return _back(binary)


@require_POST
@login_required
def binary_destroy(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    _writer(request, "destroying binaries")
    binary = _get_binary_for_user(request, binary_id)
    form = DestroyForm(request.POST, target=binary.target)
    if not form.is_valid():
        return _binary_page(request, binary, destroy_form=form)
    try:
        services.binary_request_state(
            binary=binary,
            to=State.DESTROYED,
            actor=console_actor(request),
            reason=form.cleaned_data["reason"],
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The binary was destroyed; its record and history are kept.")
    return _back(binary)


SIGNATURE_FIELDS = {
    "signature": "signature",
    "signing_key_prn": "signing_key",
    "signing_key_keyid": "signing_key",
}


@require_POST
@login_required
def binary_sign(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    _writer(request, "signing binaries")
    binary = _get_binary_for_user(request, binary_id)
    form = SignatureForm(request.POST, request.FILES, organization=binary.organization)
    if form.is_valid():
        try:
            signatures.signature_create(
                binary=binary,
                signature=form.cleaned_data["signature_text"],
                signing_key=form.cleaned_data["signing_key"],
                actor=console_actor(request),
            )
        except DomainError as exc:
            if exc.field not in SIGNATURE_FIELDS:  # not about what was typed: the state, say
                messages.error(request, exc.message)
                return _back(binary)
            add_domain_error(form, exc, SIGNATURE_FIELDS)
        else:
            messages.success(request, "Signature verified and attached.")
            return _back(binary)
    binary = _get_binary_for_user(request, binary_id)  # the state may have moved meanwhile
    return _binary_page(request, binary, sign_form=form)


@require_POST
@login_required
def binary_download_url(request: HtmxHttpRequest, binary_id: UUID) -> HttpResponse:
    """A time-limited download URL (any member, as in the API); each one is audited."""
    membership_or_404(request)
    binary = _get_binary_for_user(request, binary_id)
    try:
        issued = downloads.issue_url(
            binary=binary,
            actor=console_actor(request),
            base_url=request.build_absolute_uri("/"),
        )
    except DomainError as exc:
        if request.htmx:
            context = {"binary": binary, "can_download": False, "download_error": exc.message}
            return render(request, "console/binary_detail.html#download", context)
        messages.error(request, exc.message)
        return _back(binary)
    if request.htmx:
        context = {"binary": binary, "can_download": True, "download": issued}
        response = render(request, "console/binary_detail.html#download", context)
    else:
        response = _binary_page(request, binary, download=issued)
    response["Cache-Control"] = "no-store"  # the URL is a bearer credential
    return response


# --- Signing keys -------------------------------------------------------------------------


def _render_signing_keys(request: HttpRequest, form: SigningKeyForm) -> HttpResponse:
    organization = membership_or_404(request).organization
    keys = SigningKey.objects.filter(organization=organization).order_by("-created_at", "-id")
    return render(request, "console/signing_keys.html", {"keys": keys, "form": form})


@require_GET
@login_required
def signing_key_list(request: HttpRequest) -> HttpResponse:
    return _render_signing_keys(request, SigningKeyForm())


@require_POST
@login_required
def signing_key_create(request: HttpRequest) -> HttpResponse:
    membership = _writer(request, "registering signing keys")
    form = SigningKeyForm(request.POST)
    if form.is_valid():
        try:
            key = signatures.signing_key_create(
                organization=membership.organization,
                name=form.cleaned_data["name"],
                value=form.cleaned_data["value"],
                actor=console_actor(request),
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Signing key {key.name} ({key.algorithm}) registered.")
            return redirect("console:signing_key_list")
    return _render_signing_keys(request, form)


@require_POST
@login_required
def signing_key_revoke(request: HttpRequest, key_id: UUID) -> HttpResponse:
    _admin(request, "revoking signing keys")
    key = _get_signing_key_for_user(request, key_id)
    signatures.signing_key_revoke(key=key, actor=console_actor(request))
    messages.success(request, f"Signing key {key.name} revoked; its signatures no longer count.")
    return redirect("console:signing_key_list")


# --- The audit trail (admins) -------------------------------------------------------------


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
        since=data["since"],
        until=data["until"],
    )


def _binary_links(membership: Membership, entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The binaries the entries name, by PRN, to link them and show what they were."""
    ids = []
    for entry in entries:
        try:
            prn = parse_prn(entry["object_prn"] or "")
        except MalformedPRN:
            continue
        if prn.type == "binary" and prn.organization == membership.organization.uuid:
            ids.append(prn.id)
    found = selectors.binaries(membership.organization).prefetch_related(None).filter(uuid__in=ids)
    return {binary.prn: binary for binary in found}


def _timeline_page(
    request: HttpRequest, membership: Membership, template: str, action: str | None = None
) -> HttpResponse:
    form, filters = _audit_filters(request, action)
    entries: list[dict[str, Any]] = []
    next_page = None
    if filters is not None:
        try:
            entries, next_page = timeline.page(
                membership.organization,
                filters,
                limit=PAGE_SIZE * 2,
                cursor_text=form.cleaned_data["page"] or None,
            )
        except DomainError as exc:
            add_domain_error(form, exc, {"object": "object", "page": "page"})
    binaries = _binary_links(membership, entries)
    for entry in entries:
        entry["binary"] = binaries.get(entry["object_prn"])
        entry["moment"] = datetime.fromisoformat(entry["at"])
        details = entry["details"]
        entry["details_text"] = json.dumps(details, sort_keys=True) if details else ""
    export = _query_with(request, page=None)
    if action:
        export = _query_with(request, page=None, action=action)
    context = {
        "form": form,
        "entries": entries,
        "next_query": _query_with(request, page=next_page) if next_page else "",
        "export_query": export,
        "actions": AUDIT_ACTIONS,
    }
    return render(request, template, context)


@require_GET
@login_required
def audit(request: HttpRequest) -> HttpResponse:
    membership = _admin(request, "reading the audit trail")
    return _timeline_page(request, membership, "console/audit.html")


@require_GET
@login_required
def audit_destroyed(request: HttpRequest) -> HttpResponse:
    """Which binaries were destroyed, by whom, when and why."""
    membership = _admin(request, "reading the audit trail")
    return _timeline_page(request, membership, "console/audit_destroyed.html", "binary.destroyed")


@require_GET
@login_required
def audit_export(request: HttpRequest, format: str) -> HttpResponse | StreamingHttpResponse:
    """The whole filtered view, oldest first, streamed as CSV or JSON (same as the API's)."""
    membership = _admin(request, "exporting the audit trail")
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
    body = _csv_rows(entries) if format == "csv" else _json_rows(entries)
    content_type = "text/csv" if format == "csv" else "application/json"
    response = StreamingHttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-events.{format}"'
    return response
