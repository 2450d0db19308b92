"""Account pages: the organization switcher, API keys, members and invitations."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from peridio_console.accounts import services
from peridio_console.accounts.forms import ApiKeyForm, MemberInviteForm, MemberRoleForm
from peridio_console.accounts.membership import (
    SESSION_ORG,
    console_actor,
    invitations_for,
    membership_or_404,
    require_member_role,
)
from peridio_console.accounts.models import ApiKey, Invitation, Membership, Role
from peridio_console.core.errors import DomainError
from peridio_console.core.forms import act, add_domain_error, confirmed, submit


@require_POST
@login_required
def switch_organization(request: HttpRequest) -> HttpResponse:
    membership = get_object_or_404(
        Membership, user=request.user, organization__slug=request.POST.get("organization", "")
    )
    request.session[SESSION_ORG] = membership.organization.slug
    services.membership_choose(membership=membership)
    return redirect("dashboard")


# --- API keys: every member manages their own; admins manage all of the organization's ---


# The secret of a key just created, kept in the session between the POST and the GET that
# shows it (then removed): a reload shows the list, and never creates a second key.
SESSION_NEW_API_KEY = "new_api_key"


def _render_api_keys(request: HttpRequest, form: ApiKeyForm) -> HttpResponse:
    membership = membership_or_404(request)
    keys = ApiKey.objects.filter(organization=membership.organization).select_related("user")
    if membership.role != Role.ADMIN:
        keys = keys.filter(user_id=membership.user_id)
    new_secret, new_key = "", None
    if request.method == "GET":
        shown = request.session.pop(SESSION_NEW_API_KEY, None)
        if shown:
            new_key = keys.filter(pk=shown["pk"]).first()
            new_secret = shown["secret"] if new_key is not None else ""
    context = {
        "keys": keys.order_by("revoked_at", "-created_at", "-id"),
        "form": form,
        "new_secret": new_secret,
        "new_key": new_key,
    }
    response = render(request, "console/api_keys.html", context)
    if new_secret:
        response["Cache-Control"] = "no-store"  # the one time the secret exists in clear
    return response


def _get_api_key_for_user(request: HttpRequest, key_id: int) -> ApiKey:
    membership = membership_or_404(request)
    keys = ApiKey.objects.select_related("organization", "user").filter(
        organization=membership.organization
    )
    if membership.role != Role.ADMIN:
        keys = keys.filter(user_id=membership.user_id)
    return get_object_or_404(keys, pk=key_id)


@require_GET
@login_required
def api_key_list(request: HttpRequest) -> HttpResponse:
    return _render_api_keys(request, ApiKeyForm())


@require_POST
@login_required
def api_key_create(request: HttpRequest) -> HttpResponse:
    """A key for yourself, with your role; its secret is shown once, on the page this
    redirects to."""
    membership = membership_or_404(request)
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _render_api_keys(request, form)
    try:
        key, secret = services.api_key_issue(
            organization=membership.organization,
            user=request.user,
            actor=console_actor(request),
            name=form.cleaned_data["name"],
        )
    except DomainError as exc:
        add_domain_error(form, exc)
        return _render_api_keys(request, form)
    request.session[SESSION_NEW_API_KEY] = {"pk": key.pk, "secret": secret}
    return redirect("console:api_key_list")


@require_POST
@login_required
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = _get_api_key_for_user(request, key_id)
    if not confirmed(request, "revoking an API key"):
        return redirect("console:api_key_list")
    services.api_key_revoke(key=key, actor=console_actor(request))
    messages.success(request, f"API key {key.prefix}… revoked.")
    return redirect("console:api_key_list")


# --- Members (admins) -----------------------------------------------------------------------


# The same words whether or not the account exists: the form must not tell usernames apart.
INVITATION_SENT = "If that account exists, they will see the invitation when they log in."


def _render_members(request: HttpRequest, membership: Membership, form: MemberInviteForm):
    members = (
        Membership.objects.filter(organization=membership.organization)
        .select_related("user")
        .order_by("user__username")
    )
    context = {
        "members": members,
        "invitations": _pending_invitations(membership),
        "form": form,
        "roles": Role.choices,
    }
    return render(request, "console/members.html", context)


def _pending_invitations(membership: Membership) -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(
            organization=membership.organization, status=Invitation.Status.PENDING
        )
        .select_related("organization", "invited_by")
        .order_by("-created_at", "-pk")
    )


def _get_invitation(request: HttpRequest, invitations: QuerySet[Invitation]) -> Invitation:
    """The invitation a button names, among those the user may answer; else not found."""
    try:
        pk = int(request.POST.get("invitation", ""))
    except ValueError:
        raise Http404("No such invitation.") from None
    return get_object_or_404(invitations, pk=pk)


def _get_member_for_user(request: HttpRequest, membership_id: int) -> Membership:
    membership = membership_or_404(request)
    return get_object_or_404(
        Membership.objects.select_related("organization", "user"),
        organization=membership.organization,
        pk=membership_id,
    )


@require_GET
@login_required
def member_list(request: HttpRequest) -> HttpResponse:
    membership = membership_or_404(request)
    require_member_role(membership, Role.ADMIN, "managing members")
    return _render_members(request, membership, MemberInviteForm())


@require_POST
@login_required
def member_invite(request: HttpRequest) -> HttpResponse:
    membership = membership_or_404(request)
    require_member_role(membership, Role.ADMIN, "managing members")
    form = MemberInviteForm(request.POST)
    invited = submit(
        request,
        form,
        lambda data: services.invitation_create(
            organization=membership.organization,
            invitee=data["invitee"],
            role=data["role"],
            actor=console_actor(request),
        ),
        lambda _: INVITATION_SENT,
    )
    if invited is not None:
        return redirect("console:member_list")
    return _render_members(request, membership, form)


@require_POST
@login_required
def invitation_cancel(request: HttpRequest) -> HttpResponse:
    membership = membership_or_404(request)
    require_member_role(membership, Role.ADMIN, "managing members")
    invitation = _get_invitation(request, _pending_invitations(membership))
    if not confirmed(request, "cancelling an invitation"):
        return redirect("console:member_list")
    act(
        request,
        lambda: services.invitation_cancel(invitation=invitation, actor=console_actor(request)),
        f"The invitation for {invitation.address} was cancelled.",
    )
    return redirect("console:member_list")


@require_POST
@login_required
def member_change_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    require_member_role(membership_or_404(request), Role.ADMIN, "managing members")
    member = _get_member_for_user(request, membership_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Choose a role: {', '.join(Role.values)}.")
        return redirect("console:member_list")
    role = form.cleaned_data["role"]
    act(
        request,
        lambda: services.membership_change_role(
            membership=member, role=role, actor=console_actor(request)
        ),
        f"{member.user.get_username()} is now {role}.",
    )
    return redirect("console:member_list")


@require_POST
@login_required
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    require_member_role(membership_or_404(request), Role.ADMIN, "managing members")
    member = _get_member_for_user(request, membership_id)
    if not confirmed(request, "removing a member"):
        return redirect("console:member_list")
    removed = act(
        request,
        lambda: services.membership_remove(membership=member, actor=console_actor(request)),
        f"{member.user.get_username()} was removed.",
    )
    if removed and member.user_id == request.user.pk:
        return redirect("dashboard")
    return redirect("console:member_list")


# --- Invitations to the logged-in user ------------------------------------------------------


@require_GET
@login_required
def invitation_list(request: HttpRequest) -> HttpResponse:
    invitations = invitations_for(request.user).order_by("-created_at", "-pk")
    return render(request, "console/invitations.html", {"invitations": invitations})


@require_POST
@login_required
def invitation_accept(request: HttpRequest) -> HttpResponse:
    invitation = _get_invitation(request, invitations_for(request.user))
    organization = invitation.organization
    accepted = act(
        request,
        lambda: services.invitation_accept(
            invitation=invitation, user=request.user, actor=console_actor(request)
        ),
        f"You joined {organization.name} as {invitation.role}.",
    )
    if not accepted:
        return redirect("console:invitation_list")
    request.session[SESSION_ORG] = organization.slug
    return redirect("dashboard")


@require_POST
@login_required
def invitation_decline(request: HttpRequest) -> HttpResponse:
    invitation = _get_invitation(request, invitations_for(request.user))
    act(
        request,
        lambda: services.invitation_decline(
            invitation=invitation, user=request.user, actor=console_actor(request)
        ),
        f"You declined the invitation to {invitation.organization.name}.",
    )
    return redirect("console:invitation_list")
