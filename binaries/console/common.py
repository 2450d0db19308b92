"""What every console page shares: the role checks, the organization-scoped lookups that
404 across organizations, and cursor paging."""

from typing import Any
from uuid import UUID

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django_htmx.middleware import HtmxDetails

from binaries import selectors
from binaries.models import Artifact, ArtifactVersion, Binary, SigningKey
from peridio_console.accounts.membership import membership_or_404, require_member_role
from peridio_console.accounts.models import Membership, Role
from peridio_console.core.errors import DomainError
from peridio_console.core.pagination import keyset_page

PAGE_SIZE = 25


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def writer(request: HttpRequest, doing: str) -> Membership:
    membership = membership_or_404(request)
    require_member_role(membership, Role.ENGINEER, doing)
    return membership


def admin(request: HttpRequest, doing: str) -> Membership:
    membership = membership_or_404(request)
    require_member_role(membership, Role.ADMIN, doing)
    return membership


def get_artifact_for_user(request: HttpRequest, artifact_id: UUID) -> Artifact:
    organization = membership_or_404(request).organization
    return get_object_or_404(selectors.artifacts(organization), uuid=artifact_id)


def get_version_for_user(request: HttpRequest, version_id: UUID) -> ArtifactVersion:
    organization = membership_or_404(request).organization
    return get_object_or_404(selectors.artifact_versions(organization), uuid=version_id)


def get_binary_for_user(request: HttpRequest, binary_id: UUID) -> Binary:
    organization = membership_or_404(request).organization
    return get_object_or_404(selectors.binaries(organization), uuid=binary_id)


def get_signing_key_for_user(request: HttpRequest, key_id: UUID) -> SigningKey:
    organization = membership_or_404(request).organization
    return get_object_or_404(
        SigningKey.objects.select_related("organization"), organization=organization, uuid=key_id
    )


def page(request: HttpRequest, queryset: Any, list_name: str) -> tuple[list, str | None, str]:
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


def query_with(request: HttpRequest, **changes: str | None) -> str:
    query = request.GET.copy()
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return query.urlencode()
