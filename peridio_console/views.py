"""Account pages: the dashboard and the organization switcher."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from peridio_console.actors import Actor
from peridio_console.models import Membership, Role, role_allows

SESSION_ORG = "organization_slug"


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership the user is working in: the one chosen in the switcher, else the first."""
    cached = getattr(request, "_membership", None)
    if cached is not None:
        return cached
    memberships = Membership.objects.filter(user_id=int(request.user.pk or 0)).select_related(
        "organization"
    )
    chosen = request.session.get(SESSION_ORG)
    membership = (chosen and memberships.filter(organization__slug=chosen).first()) or (
        memberships.order_by("organization__name").first()
    )
    request._membership = membership  # type: ignore[attr-defined]
    return membership


def membership_or_404(request: HttpRequest) -> Membership:
    """The current membership; a user in no organization has nothing to see here."""
    membership = current_membership(request)
    if membership is None:
        raise Http404("You are not a member of any organization.")
    return membership


def require_role(membership: Membership, needed: str, doing: str) -> None:
    """403 unless the member's role is at least `needed`, whatever the page showed them."""
    if not role_allows(membership.role, needed):
        above = " or admin" if needed == Role.ENGINEER else ""
        raise PermissionDenied(
            f"{doing[:1].upper()}{doing[1:]} needs the {needed}{above} role; you are "
            f"{'an' if membership.role[:1] in 'aeiou' else 'a'} {membership.role} in "
            f"{membership.organization.name}."
        )


def console_actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user).with_ip(request.META.get("REMOTE_ADDR") or None)


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    from binaries.selectors import artifacts, binaries

    membership = current_membership(request)
    context: dict = {"artifacts": [], "binary_counts": {}}
    if membership is not None:
        org = membership.organization
        context["artifacts"] = artifacts(org).order_by("name")[:50]
        context["binary_count"] = binaries(org).count()
    return render(request, "console/dashboard.html", context)


@require_POST
@login_required
def switch_organization(request: HttpRequest) -> HttpResponse:
    membership = get_object_or_404(
        Membership, user=request.user, organization__slug=request.POST.get("organization", "")
    )
    request.session[SESSION_ORG] = membership.organization.slug
    return redirect("dashboard")
