"""Writes for organizations, members and API keys."""

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from peridio_console.accounts import audit
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import ApiKey, Membership, Organization, Role, hash_secret
from peridio_console.core.errors import Conflict, InvalidInput, conflict_on_integrity_error

LAST_USED_RESOLUTION = timedelta(minutes=1)


def unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def organization_create(*, name: str, admin_username: str, password: str | None = None):
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
    return org, user, new_password


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


def api_key_revoke(*, key: ApiKey, actor: Actor) -> ApiKey:
    """Revoke a key at once; revoking a revoked key changes nothing and records nothing."""
    now = timezone.now()
    with transaction.atomic():
        if ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
            audit.record(
                organization=key.organization,
                actor=actor,
                action="api_key.revoked",
                details={"prefix": key.prefix, "name": key.name, "user": key.user.get_username()},
            )
    key.refresh_from_db()
    return key


def _clean_role(role: object) -> str:
    if role not in Role.values:
        raise InvalidInput(
            f"role must be one of {', '.join(Role.values)}; got {role!r}.", field="role"
        )
    return str(role)


def membership_add(
    *, organization: Organization, username: str, role: str, actor: Actor
) -> Membership:
    """Add an existing user to the organization with a role."""
    role = _clean_role(role)
    user = get_user_model().objects.filter(username=(username or "").strip()).first()
    if user is None:
        raise InvalidInput(
            f"There is no user named {username!r}; they need an account before they can be added.",
            field="username",
        )
    with conflict_on_integrity_error(
        Conflict(
            f"{user.get_username()} is already a member of {organization.name}.",
            field="username",
            code="already_exists",
        )
    ):
        membership = Membership.objects.create(user=user, organization=organization, role=role)
        audit.record(
            organization=organization,
            actor=actor,
            action="membership.added",
            object_prn=organization.prn,
            details={"user": user.get_username(), "role": role},
        )
    return membership


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
            details={"user": current.user.get_username(), "from": current.role, "to": role},
        )
    membership.refresh_from_db()
    return membership


def membership_remove(*, membership: Membership, actor: Actor) -> None:
    """Remove a member; their API keys in this organization are revoked with the membership."""
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
            },
        )
