"""Writes for organizations, members and API keys."""

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from peridio_console.accounts import audit
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import (
    ApiKey,
    AuditAction,
    Invitation,
    Membership,
    Organization,
    Role,
    hash_secret,
)
from peridio_console.core.errors import Conflict, InvalidInput, conflict_on_integrity_error

LAST_USED_RESOLUTION = timedelta(minutes=1)


def unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def organization_create(
    *, name: str, admin_username: str, password: str | None = None, actor: Actor | None = None
):
    """Create an organization with an admin member. Returns (org, user, new_password or None)."""
    if not name or not name.strip():
        raise InvalidInput("An organization needs a name.", field="name")
    user_model = get_user_model()
    new_password = None
    with transaction.atomic():
        org = Organization.objects.create(name=name.strip(), slug=unique_slug(name))
        user = user_model.objects.filter(username=admin_username).first()
        if user is None:
            new_password = password or secrets.token_urlsafe(12)
            user = user_model.objects.create_user(username=admin_username, password=new_password)
            if password:
                new_password = None
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        Membership.objects.create(user=user, organization=org, role=Role.ADMIN)
        audit.record(
            organization=org,
            actor=actor or Actor.system("organization setup"),
            action=AuditAction.ORGANIZATION_CREATED,
            object_prn=org.prn,
            details={
                "changes": audit.changes({}, {"name": org.name, "slug": org.slug}),
                "admin": user.get_username(),
            },
        )
    return org, user, new_password


def organization_rename(*, organization: Organization, name: str, actor: Actor) -> Organization:
    """A new name (the slug, and so every URL and PRN, stays), recorded with before and after."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("An organization needs a name.", field="name")
    limit = Organization._meta.get_field("name").max_length or 0
    if len(name) > limit:
        raise InvalidInput(f"name must be at most {limit} characters.", field="name")
    with transaction.atomic():
        current = Organization.objects.select_for_update().get(pk=organization.pk)
        if current.name != name:
            Organization.objects.filter(pk=current.pk).update(name=name)
            audit.record(
                organization=current,
                actor=actor,
                action=AuditAction.ORGANIZATION_UPDATED,
                object_prn=current.prn,
                details={"changes": {"name": [current.name, name]}},
            )
    organization.refresh_from_db()
    return organization


def api_key_create(*, organization: Organization, user, name: str = "") -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is shown once and never stored."""
    if not Membership.objects.filter(organization=organization, user=user).exists():
        raise InvalidInput(
            f"{user.get_username()} is not a member of {organization.slug}; add them first.",
            field="user",
        )
    prefix, secret = ApiKey.new_secret()
    key = ApiKey.objects.create(
        organization=organization,
        user=user,
        name=name[:128],
        prefix=prefix,
        secret_hash=hash_secret(secret),
    )
    return key, secret


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The live key for a presented secret, or None. Touches last_used_at at most once a minute."""
    parts = raw.split("_", 2)  # the secret itself may contain underscores
    if len(parts) != 3 or parts[0] != "pdo":
        return None
    key = (
        ApiKey.objects.select_related("organization", "user")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if key is None or not secrets.compare_digest(key.secret_hash, hash_secret(raw)):
        return None
    if not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def role_of(user, organization: Organization) -> str | None:
    return (
        Membership.objects.filter(user=user, organization=organization)
        .values_list("role", flat=True)
        .first()
    )


# --- Members and API keys managed in the console: every change is an audit event ----------


def api_key_issue(
    *, organization: Organization, user, actor: Actor, name: str = ""
) -> tuple[ApiKey, str]:
    """api_key_create, recorded in the audit trail (who created which key for whom)."""
    with transaction.atomic():
        key, secret = api_key_create(organization=organization, user=user, name=name)
        audit.record(
            organization=organization,
            actor=actor,
            action="api_key.created",
            details={"prefix": key.prefix, "name": key.name, "user": user.get_username()},
        )
    return key, secret


def api_key_rename(*, key: ApiKey, name: str, actor: Actor) -> ApiKey:
    """A key's label (its secret and prefix stay), recorded with before and after."""
    name = (name or "").strip()
    limit = ApiKey._meta.get_field("name").max_length or 0
    if len(name) > limit:
        raise InvalidInput(f"name must be at most {limit} characters.", field="name")
    with transaction.atomic():
        current = ApiKey.objects.select_for_update().select_related("user").get(pk=key.pk)
        if current.name != name:
            ApiKey.objects.filter(pk=current.pk).update(name=name)
            audit.record(
                organization=key.organization,
                actor=actor,
                action=AuditAction.API_KEY_UPDATED,
                details={
                    "prefix": current.prefix,
                    "user": current.user.get_username(),
                    "changes": {"name": [current.name, name]},
                },
            )
    key.refresh_from_db()
    return key


def api_key_revoke(*, key: ApiKey, actor: Actor, reason: str = "") -> ApiKey:
    """Revoke a key at once; revoking a revoked key changes nothing and records nothing.
    A reason (the admin asks staff for one) is kept in the event."""
    now = timezone.now()
    with transaction.atomic():
        if ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
            audit.record(
                organization=key.organization,
                actor=actor,
                action="api_key.revoked",
                details={
                    "prefix": key.prefix,
                    "name": key.name,
                    "user": key.user.get_username(),
                    **({"reason": reason} if reason else {}),
                },
            )
    key.refresh_from_db()
    return key


def _clean_role(role: object) -> str:
    if role not in Role.values:
        raise InvalidInput(
            f"role must be one of {', '.join(Role.values)}; got {role!r}.", field="role"
        )
    return str(role)


def _clean_invitee(invitee: str) -> str:
    # Normalised as authentication normalises a username (NFKC), so a look-alike finds nobody.
    address = get_user_model().normalize_username((invitee or "").strip())
    if not address:
        raise InvalidInput(
            "Give the username or e-mail address of the person to invite.", field="invitee"
        )
    if len(address) > 254:
        raise InvalidInput(
            f"A username or e-mail address has at most 254 characters; got {len(address)}.",
            field="invitee",
        )
    return address


def invitation_create(
    *, organization: Organization, invitee: str, role: str, actor: Actor
) -> Invitation:
    """Invite whoever has this username or e-mail address. No account is looked up: the
    answer is the same whether one exists, and the invitation waits for its owner."""
    role = _clean_role(role)
    address = _clean_invitee(invitee)
    # The members page lists members' usernames already: saying so reveals nothing new.
    if Membership.objects.filter(organization=organization, user__username=address).exists():
        raise Conflict(
            f"{address} is already a member of {organization.name}.",
            field="invitee",
            code="already_exists",
        )
    with conflict_on_integrity_error(
        Conflict(
            f"{address} already has a pending invitation to {organization.name}; cancel it "
            "first to offer another role.",
            field="invitee",
            code="already_exists",
        )
    ):
        invitation = Invitation.objects.create(
            organization=organization, address=address, role=role, invited_by=actor.user
        )
        audit.record(
            organization=organization,
            actor=actor,
            action="membership.invited",
            object_prn=organization.prn,
            details={"invitee": address, "role": role},
        )
    return invitation


def _invitation_close(invitation: Invitation, status: str, *, user=None) -> None:
    """Answer a pending invitation (under the caller's transaction); each is answered once."""
    closed = Invitation.objects.filter(pk=invitation.pk, status=Invitation.Status.PENDING).update(
        status=status, user=user, answered_at=timezone.now()
    )
    if not closed:
        raise Conflict(
            f"The invitation to {invitation.organization.name} was already accepted, declined "
            "or cancelled.",
            code="invitation_closed",
        )


def invitation_accept(*, invitation: Invitation, user, actor: Actor) -> Membership:
    """The invited user says yes: only now are they a member, with the role offered, and it
    is the organization they work in."""
    organization = invitation.organization
    with conflict_on_integrity_error(
        Conflict(
            f"You are already a member of {organization.name}; decline the invitation instead.",
            code="already_exists",
        )
    ):
        _invitation_close(invitation, Invitation.Status.ACCEPTED, user=user)
        membership = Membership.objects.create(
            user=user,
            organization=organization,
            role=invitation.role,
            last_used_at=timezone.now(),
        )
        audit.record(
            organization=organization,
            actor=actor,
            action="membership.added",
            object_prn=organization.prn,
            details={
                "user": user.get_username(),
                "role": invitation.role,
                "invitee": invitation.address,
                "invited_by": invitation.invited_by.get_username() if invitation.invited_by else "",
            },
        )
    return membership


def _invitation_close_with_event(
    *, invitation: Invitation, status: str, action: str, actor: Actor, user=None
) -> None:
    with transaction.atomic():
        _invitation_close(invitation, status, user=user)
        audit.record(
            organization=invitation.organization,
            actor=actor,
            action=action,
            object_prn=invitation.organization.prn,
            details={"invitee": invitation.address, "role": invitation.role},
        )


def invitation_decline(*, invitation: Invitation, user, actor: Actor) -> None:
    _invitation_close_with_event(
        invitation=invitation,
        status=Invitation.Status.DECLINED,
        action="membership.invitation_declined",
        actor=actor,
        user=user,
    )


def invitation_cancel(*, invitation: Invitation, actor: Actor) -> None:
    _invitation_close_with_event(
        invitation=invitation,
        status=Invitation.Status.CANCELLED,
        action="membership.invitation_cancelled",
        actor=actor,
    )


def membership_choose(*, membership: Membership) -> None:
    """The user works in this organization now, and after their next log-in."""
    Membership.objects.filter(pk=membership.pk).update(last_used_at=timezone.now())


def _refuse_losing_last_admin(membership: Membership, doing: str) -> None:
    """Called under a lock on the organization's admins: an organization keeps an admin."""
    admins = list(
        Membership.objects.select_for_update()
        .filter(organization_id=membership.organization_id, role=Role.ADMIN)
        .values_list("pk", flat=True)
    )
    if admins == [membership.pk]:
        raise Conflict(
            f"{membership.user.get_username()} is the last admin of "
            f"{membership.organization.name}; make someone else an admin before {doing}.",
            code="last_admin",
        )


def membership_change_role(*, membership: Membership, role: str, actor: Actor) -> Membership:
    role = _clean_role(role)
    with transaction.atomic():
        current = Membership.objects.select_for_update().get(pk=membership.pk)
        if current.role == role:
            return current
        if current.role == Role.ADMIN:
            _refuse_losing_last_admin(current, "changing their role")
        Membership.objects.filter(pk=current.pk).update(role=role)
        audit.record(
            organization=current.organization,
            actor=actor,
            action="membership.changed",
            object_prn=current.organization.prn,
            details={
                "user": current.user.get_username(),
                "changes": {"role": [current.role, role]},
            },
        )
    membership.refresh_from_db()
    return membership


def membership_remove(*, membership: Membership, actor: Actor, reason: str = "") -> None:
    """Remove a member; their API keys in this organization are revoked with the membership.
    A reason (the admin asks staff for one) is kept in the event."""
    now = timezone.now()
    with transaction.atomic():
        current = Membership.objects.select_for_update().get(pk=membership.pk)
        if current.role == Role.ADMIN:
            _refuse_losing_last_admin(current, "removing them")
        keys = ApiKey.objects.filter(
            organization_id=current.organization_id, user_id=current.user_id, revoked_at=None
        ).update(revoked_at=now)
        current.delete()
        audit.record(
            organization=membership.organization,
            actor=actor,
            action="membership.removed",
            object_prn=membership.organization.prn,
            details={
                "user": membership.user.get_username(),
                "role": current.role,
                "api_keys_revoked": keys,
                **({"reason": reason} if reason else {}),
            },
        )
