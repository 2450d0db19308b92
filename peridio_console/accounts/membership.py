"""The organization a console user is working in, their role there, and who they are."""

from django.db.models import F, Q, QuerySet
from django.http import Http404, HttpRequest

from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import EventSource, Invitation, Membership
from peridio_console.accounts.roles import require_role

SESSION_ORG = "organization_slug"


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership the user is working in: the one chosen in this session, else the one
    they chose last (never the first by name: joining an organization must not take over)."""
    cached = getattr(request, "_membership", None)
    if cached is not None:
        return cached
    memberships = Membership.objects.filter(user_id=int(request.user.pk or 0)).select_related(
        "organization"
    )
    chosen = request.session.get(SESSION_ORG)
    membership = (chosen and memberships.filter(organization__slug=chosen).first()) or (
        memberships.order_by(F("last_used_at").desc(nulls_last=True), "created_at", "pk").first()
    )
    request._membership = membership  # type: ignore[attr-defined]
    return membership


def invitations_for(user) -> QuerySet[Invitation]:
    """Pending invitations to the user: to their username, or to their e-mail address in any
    case."""
    addressed = Q(address=user.get_username())
    if user.email:
        addressed |= Q(address__iexact=user.email)
    return Invitation.objects.filter(addressed, status=Invitation.Status.PENDING).select_related(
        "organization", "invited_by"
    )


def membership_or_404(request: HttpRequest) -> Membership:
    """The current membership; a user in no organization has nothing to see here."""
    membership = current_membership(request)
    if membership is None:
        raise Http404("You are not a member of any organization.")
    return membership


def require_member_role(membership: Membership, needed: str, doing: str) -> None:
    """403 unless the member's role is at least `needed`, whatever the page showed them."""
    require_role(
        membership.role, needed, doing=doing, who="you are", where=membership.organization.name
    )


def console_actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user).from_request(request, EventSource.CONSOLE)
