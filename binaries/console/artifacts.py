"""The dashboard, artifacts and their versions."""

import json
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from binaries import selectors, services, timeline
from binaries.console.common import (
    HtmxHttpRequest,
    binary_links,
    get_artifact_for_user,
    get_version_for_user,
    page,
    query_with,
    writer,
)
from binaries.console.forms import (
    ArtifactForm,
    ArtifactVersionEditForm,
    ArtifactVersionForm,
    BinaryFilterForm,
)
from binaries.models import Artifact, ArtifactVersion, Binary
from peridio_console.accounts.membership import (
    console_actor,
    current_membership,
    membership_or_404,
)
from peridio_console.accounts.models import Membership, Role, role_allows
from peridio_console.core.errors import DomainError
from peridio_console.core.forms import act, add_domain_error, confirmed, submit

RECENT = 10


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Counts by state, what needs attention, the latest binaries, storage, recent activity."""
    membership = current_membership(request)
    if membership is None:
        return render(request, "console/dashboard.html", {})
    org = membership.organization
    counts = selectors.state_counts(org)
    attention = selectors.needing_attention(org)
    context = {
        "counts": counts,
        "total": sum(counts.values()),
        "attention": attention,
        "attention_count": sum(len(rows) for rows in attention.values()),
        "latest": selectors.binaries(org).order_by("-created_at", "-id")[:RECENT],
        "storage_used": selectors.storage_used(org),
        "artifact_count": selectors.artifacts(org).count(),
        "artifacts": selectors.artifacts(org).order_by("-updated_at", "-id")[:RECENT],
        "activity": _activity(membership),
    }
    return render(request, "console/dashboard.html", context)


def _activity(membership: Membership) -> list[dict]:
    """The newest entries of the audit trail (admins), or of the binaries' timelines."""
    if role_allows(membership.role, Role.ADMIN):
        entries, _ = timeline.page(membership.organization, timeline.Filters(), limit=RECENT)
        rows = [entry.model_dump() for entry in entries]
    else:
        latest = timeline.latest_binary_events(membership.organization, RECENT)
        rows = [entry.model_dump() for entry in latest]
    linked = binary_links(membership, rows)
    for row in rows:
        row["binary"] = linked.get(row["object_prn"])
        row["moment"] = datetime.fromisoformat(row["at"])
    return rows


def _render_artifacts(request: HttpRequest, form: ArtifactForm, status: int = 200) -> HttpResponse:
    organization = membership_or_404(request).organization
    rows, next_page, error = page(request, selectors.artifacts(organization), "console.artifacts")
    context = {
        "artifacts": rows,
        "next_query": query_with(request, page=next_page) if next_page else "",
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
    membership = writer(request, "creating artifacts")
    form = ArtifactForm(request.POST)
    artifact = submit(
        request,
        form,
        lambda data: services.artifact_create(
            organization=membership.organization, actor=console_actor(request), **data
        ),
        lambda artifact: f"Artifact {artifact.name} created.",
    )
    if artifact is not None:
        return redirect("console:artifact_detail", artifact.uuid)
    return _render_artifacts(request, form)


def _render_artifact(
    request: HttpRequest, artifact: Artifact, form: ArtifactVersionForm
) -> HttpResponse:
    versions = selectors.artifact_version_list(artifact.organization, artifact=artifact)
    rows, next_page, error = page(request, versions, "console.versions")
    context = {
        "artifact": artifact,
        "metadata": json.dumps(artifact.custom_metadata, indent=2, sort_keys=True),
        "versions": rows,
        "next_query": query_with(request, page=next_page) if next_page else "",
        "page_error": error,
        "form": form,
    }
    return render(request, "console/artifact_detail.html", context)


def _fields(thing: Artifact | ArtifactVersion) -> dict:
    initial = {"description": thing.description, "custom_metadata": thing.custom_metadata}
    if isinstance(thing, Artifact):
        initial["name"] = thing.name
    return initial


def _edit(
    request: HttpRequest,
    thing: Artifact | ArtifactVersion,
    form_class: type[ArtifactForm] | type[ArtifactVersionEditForm],
    save: Callable[[dict], Artifact | ArtifactVersion],
    back: HttpResponse,
) -> HttpResponse:
    """An artifact's or a version's edit page: the form filled in, saved by the service (its
    refusals on the form), then back to the page."""
    if request.method == "GET":
        form = form_class(initial=_fields(thing))
    else:
        form = form_class(request.POST)
        if submit(request, form, save, lambda saved: f"Saved {saved}.") is not None:
            return back
    version = thing if isinstance(thing, ArtifactVersion) else None
    context = {
        "form": form,
        "artifact": version.artifact if version else thing,
        "version": version,
    }
    return render(request, "console/edit.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def artifact_edit(request: HttpRequest, artifact_id: UUID) -> HttpResponse:
    writer(request, "changing artifacts")
    artifact = get_artifact_for_user(request, artifact_id)
    return _edit(
        request,
        artifact,
        ArtifactForm,
        lambda data: services.artifact_update(
            artifact=artifact, actor=console_actor(request), **data
        ),
        redirect("console:artifact_detail", artifact.uuid),
    )


@require_POST
@login_required
def artifact_delete(request: HttpRequest, artifact_id: UUID) -> HttpResponse:
    writer(request, "deleting artifacts")
    artifact = get_artifact_for_user(request, artifact_id)
    if confirmed(request, "deleting an artifact") and act(
        request,
        lambda: services.artifact_delete(artifact=artifact, actor=console_actor(request)),
        f"Artifact {artifact.name} deleted.",
    ):
        return redirect("console:artifact_list")
    return redirect("console:artifact_detail", artifact.uuid)


@require_GET
@login_required
def artifact_detail(request: HttpRequest, artifact_id: UUID) -> HttpResponse:
    artifact = get_artifact_for_user(request, artifact_id)
    return _render_artifact(request, artifact, ArtifactVersionForm())


@require_POST
@login_required
def artifact_version_create(request: HttpRequest, artifact_id: UUID) -> HttpResponse:
    writer(request, "creating artifact versions")
    artifact = get_artifact_for_user(request, artifact_id)
    form = ArtifactVersionForm(request.POST)
    version = submit(
        request,
        form,
        lambda data: services.artifact_version_create(
            artifact=artifact, actor=console_actor(request), **data
        ),
        lambda version: f"Version {version.version} created.",
    )
    if version is not None:
        return redirect("console:version_detail", version.uuid)
    return _render_artifact(request, artifact, form)


@require_http_methods(["GET", "POST"])
@login_required
def version_edit(request: HttpRequest, version_id: UUID) -> HttpResponse:
    writer(request, "changing artifact versions")
    version = get_version_for_user(request, version_id)
    return _edit(
        request,
        version,
        ArtifactVersionEditForm,
        lambda data: services.artifact_version_update(
            artifact_version=version, actor=console_actor(request), **data
        ),
        redirect("console:version_detail", version.uuid),
    )


@require_POST
@login_required
def version_delete(request: HttpRequest, version_id: UUID) -> HttpResponse:
    writer(request, "deleting artifact versions")
    version = get_version_for_user(request, version_id)
    if confirmed(request, "deleting a version") and act(
        request,
        lambda: services.artifact_version_delete(
            artifact_version=version, actor=console_actor(request)
        ),
        f"Version {version.version} deleted.",
    ):
        return redirect("console:artifact_detail", version.artifact.uuid)
    return redirect("console:version_detail", version.uuid)


@require_GET
@login_required
def version_detail(request: HtmxHttpRequest, version_id: UUID) -> HttpResponse:
    """The version's binaries: filters, the API's search language, and cursor paging."""
    version = get_version_for_user(request, version_id)
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
            rows, next_page, error = page(request, queryset, "console.binaries")
    context = {
        "version": version,
        "artifact": version.artifact,
        "filters": filters,
        "binaries": rows,
        "next_query": query_with(request, page=next_page) if next_page else "",
        "first_query": query_with(request, page=None) if request.GET.get("page") else "",
        "page_error": error,
        "metadata": json.dumps(version.custom_metadata, indent=2, sort_keys=True),
    }
    template = "console/version_detail.html"
    if request.htmx and not request.htmx.boosted:
        template += "#binaries-table"
    return render(request, template, context)
