from django.http import HttpRequest

from peridio_console.accounts.membership import current_membership, invitations_for
from peridio_console.accounts.models import Role, role_allows


def organization(request: HttpRequest) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = current_membership(request)
    return {
        "membership": membership,
        "organization": membership.organization if membership else None,
        # What to show; every write view checks the role again on the server.
        "can_write": bool(membership and role_allows(membership.role, Role.ENGINEER)),
        "is_admin": bool(membership and membership.role == Role.ADMIN),
        "memberships": request.user.memberships.select_related("organization").order_by(
            "organization__name"
        ),
        "pending_invitations": invitations_for(request.user).count(),
    }
