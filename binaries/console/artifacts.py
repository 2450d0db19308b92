"""The dashboard, artifacts and their versions."""

import json
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from binaries import selectors, services
from binaries.console.common import (
    HtmxHttpRequest,
    get_artifact_for_user,
    get_version_for_user,
    page,
    query_with,
    writer,
)
from binaries.console.forms import (
    ArtifactForm,
    ArtifactVersionForm,
    BinaryFilterForm,
)
from binaries.models import Artifact, Binary
from peridio_console.accounts.membership import (
    console_actor,
    current_membership,
    membership_or_404,
)
from peridio_console.core.errors import DomainError
from peridio_console.core.forms import add_domain_error, submit


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    membership = current_membership(request)
    context: dict = {"artifacts": [], "binary_counts": {}}
    if membership is not None:
        org = membership.organization
        context["artifacts"] = selectors.artifacts(org).order_by("name")[:50]
        context["binary_count"] = selectors.binaries(org).count()
    return render(request, "console/dashboard.html", context)


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
    }
    template = "console/version_detail.html"
    if request.htmx and not request.htmx.boosted:
        template += "#binaries-table"
    return render(request, template, context)
