"""Writes for organizations, members and API keys."""

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from binaries.errors import InvalidInput
from peridio_console.models import ApiKey, Membership, Organization, Role, hash_secret

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
    parts = raw.split("_")
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
