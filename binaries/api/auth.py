"""API keys in the Authorization header, and the role checks every write makes.

`Authorization: Bearer pdo_<prefix>_<secret>` or `Authorization: Token pdo_<prefix>_<secret>`.
The key names the organization; the role is its user's membership there.
"""

from dataclasses import dataclass, replace

from django.http import HttpRequest
from ninja.security.base import AuthBase
from ninja.security.http import HttpAuthBase
from ninja.utils import check_csrf

from peridio_console.accounts import roles
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.membership import current_membership
from peridio_console.accounts.models import ApiKey, EventSource, Organization, Role
from peridio_console.accounts.services import api_key_authenticate, role_of
from peridio_console.core.errors import DomainError, PermissionDenied

SCHEMES = ("bearer", "token")


class NotAuthenticated(DomainError):
    status = 401
    code = "unauthorized"


@dataclass(frozen=True)
class ApiContext:
    api_key: ApiKey | None  # None when the console's own session calls the API
    organization: Organization
    actor: Actor
    role: str


def _credential(header: str) -> str:
    if not header.strip():
        raise NotAuthenticated(
            "Send an API key in the Authorization header: `Authorization: Bearer <API key>`."
        )
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() not in SCHEMES:
        raise NotAuthenticated(
            "The Authorization header must be `Bearer <API key>` or `Token <API key>`."
        )
    if not parts[1].isascii() or not parts[1].isprintable():
        raise NotAuthenticated("This API key is not valid: it is unknown, revoked or malformed.")
    return parts[1]


def authenticate_header(header: str) -> ApiContext:
    key = api_key_authenticate(_credential(header))
    if key is None:
        raise NotAuthenticated("This API key is not valid: it is unknown, revoked or malformed.")
    role = role_of(key.user, key.organization)
    if role is None:
        raise NotAuthenticated(
            f"This API key's user is no longer a member of {key.organization.slug}; "
            "ask an admin for a new key."
        )
    return ApiContext(
        api_key=key, organization=key.organization, actor=Actor.for_api_key(key), role=role
    )


class ApiKeyAuth(HttpAuthBase):
    openapi_scheme = "bearer"
    openapi_description = "An API key: `Authorization: Bearer pdo_…` (or `Token pdo_…`)."

    def __call__(self, request: HttpRequest) -> ApiContext:
        context = authenticate_header(request.headers.get("Authorization", ""))
        return replace(context, actor=context.actor.from_request(request, EventSource.API))


def api_context(request: HttpRequest) -> ApiContext:
    """The context the auth step attached to this request."""
    context = getattr(request, "auth", None)
    if not isinstance(context, ApiContext):
        raise NotAuthenticated("This request is not authenticated.")
    return context


def require_role(context: ApiContext, needed: str, doing: str) -> None:
    """Refuse with a 403 naming the role `doing` needs when the key's user has less."""
    who = (
        f"this API key belongs to {context.api_key.user.get_username()},"
        if context.api_key
        else f"you are {context.actor.label},"
    )
    roles.require_role(context.role, needed, doing=doing, who=who, where=context.organization.slug)


def writer(request: HttpRequest, doing: str) -> ApiContext:
    """The context of a request that changes something: engineers and admins only."""
    context = api_context(request)
    require_role(context, Role.ENGINEER, doing)
    return context


class ConsoleSessionAuth(AuthBase):
    """The console's own pages call the API with the logged-in session (and its CSRF token).

    It steps aside for requests that carry an Authorization header, so API-key clients never
    meet a CSRF check, and for anonymous requests, which the API-key check then refuses.
    """

    openapi_type = "apiKey"
    openapi_in = "cookie"
    openapi_name = "sessionid"
    openapi_description = "The console's session cookie (with the X-CSRFToken header on writes)."

    def __call__(self, request: HttpRequest) -> ApiContext | None:
        if "Authorization" in request.headers or not request.user.is_authenticated:
            return None
        if request.method not in ("GET", "HEAD", "OPTIONS") and check_csrf(request):
            raise PermissionDenied(
                "The console's CSRF token is missing or wrong; reload the page and try again."
            )
        membership = current_membership(request)
        if membership is None:
            return None
        return ApiContext(
            api_key=None,
            organization=membership.organization,
            actor=Actor.for_user(request.user).from_request(request, EventSource.CONSOLE),
            role=membership.role,
        )
