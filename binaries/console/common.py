"""What every console page shares: the role checks, the organization-scoped lookups that
404 across organizations, and cursor paging."""

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_htmx.middleware import HtmxDetails

from binaries import selectors
from binaries.models import Artifact, ArtifactVersion, Binary, SigningKey
from binaries.services import clean_reason
from peridio_console.accounts.membership import membership_or_404, require_member_role
from peridio_console.accounts.models import Membership, Role
from peridio_console.core.errors import DomainError
from peridio_console.core.forms import confirmed
from peridio_console.core.pagination import keyset_page
from peridio_console.core.prn import MalformedPRN, format_prn, parse_prn

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


def confirmed_reason(request: HttpRequest, doing: str, why: str) -> str | None:
    """The reason of a confirmed destructive action that the audit trail keeps; None (with
    the refusal flashed, nothing changed) when unconfirmed, or the reason is missing or long."""
    if not confirmed(request, doing):
        return None
    try:
        reason = clean_reason(request.POST.get("reason"))
    except DomainError as exc:
        messages.error(request, f"Nothing was changed: {exc.message}")
        return None
    if not reason:
        messages.error(request, f"Nothing was changed: say why {why} (the reason).")
        return None
    return reason


def binary_links(membership: Membership, entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The binaries the entries name, by PRN: {"url", "label"} to link them and show what they
    were. Read as values (a page of the audit trail names up to 50 binaries)."""
    organization = membership.organization
    ids = []
    for entry in entries:
        try:
            prn = parse_prn(entry["object_prn"] or "")
        except MalformedPRN:
            continue
        if prn.type == "binary" and prn.organization == organization.uuid:
            ids.append(prn.id)
    if not ids:
        return {}
    found = (
        selectors.binaries(organization)
        .prefetch_related(None)
        .filter(uuid__in=ids)
        .values_list(
            "uuid", "target", "artifact_version__artifact__name", "artifact_version__version"
        )
        .order_by()
    )
    detail = reverse("console:binary_detail", args=[UUID(int=0)])
    blank = str(UUID(int=0))
    return {
        format_prn(organization.uuid, "binary", uuid): {
            "url": detail.replace(blank, str(uuid)),
            "label": f"{artifact} {version} / {target}",
        }
        for uuid, target, artifact, version in found
    }
