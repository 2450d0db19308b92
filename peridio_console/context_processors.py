from django.http import HttpRequest

from peridio_console.views import current_membership


def organization(request: HttpRequest) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = current_membership(request)
    return {
        "membership": membership,
        "organization": membership.organization if membership else None,
        "memberships": request.user.memberships.select_related("organization").order_by(
            "organization__name"
        ),
    }
