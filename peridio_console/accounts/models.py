"""Organizations, memberships and API keys: who may act, and on whose behalf."""

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from peridio_console.core.append_only import AppendOnlyModel
from peridio_console.core.prn import format_prn


class Organization(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=128)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return self.name

    @property
    def prn(self) -> str:
        return format_prn(self.uuid)


class Role(models.TextChoices):
    ADMIN = "admin"
    ENGINEER = "engineer"
    VIEWER = "viewer"


ROLE_RANK = {Role.VIEWER: 0, Role.ENGINEER: 1, Role.ADMIN: 2}


def role_allows(role: str, needed: str) -> bool:
    return ROLE_RANK[Role(role)] >= ROLE_RANK[Role(needed)]


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ENGINEER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # When the user last chose this organization (the switcher, an accepted invitation): the
    # one they work in after their next log-in.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org"),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Invitation(models.Model):
    """A role in an organization offered to whoever has the username or e-mail address
    `address`. Nothing changes until they accept it in the console; an admin never learns
    from it whether such an account exists."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        DECLINED = "declined"
        CANCELLED = "cancelled"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    address = models.CharField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who accepted or declined it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "address"],
                condition=models.Q(status="pending"),
                name="one_pending_invitation_per_address",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="invitation_role_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "accepted", "declined", "cancelled"]),
                name="invitation_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["status", "address"])]

    def __str__(self) -> str:
        return f"{self.address} to {self.organization} ({self.role}, {self.status})"


KEY_PREFIX = "pdo"


def hash_secret(secret: str) -> str:
    # The secret carries 256 bits of randomness, so one SHA-256 is enough (no need to stretch).
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=128, blank=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name or 'API key'} ({self.prefix}…)"

    @staticmethod
    def new_secret() -> tuple[str, str]:
        """A fresh (prefix, full key). Only the hash of the key is ever stored."""
        prefix = secrets.token_hex(4)
        return prefix, f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditAction(models.TextChoices):
    """Every action the audit trail records: the one list the console's filter shows and the
    API accepts. binary.* events are BinaryEvents (the binary's timeline), the rest
    AuditEvents; a binary.<state> action is the move to that state."""

    BINARY_CREATED = "binary.created"
    BINARY_UPDATED = "binary.updated"
    BINARY_HASHABLE = "binary.hashable"
    BINARY_HASHING = "binary.hashing"
    BINARY_SIGNABLE = "binary.signable"
    BINARY_SIGNED = "binary.signed"
    BINARY_UPLOADABLE = "binary.uploadable"
    BINARY_DESTROYED = "binary.destroyed"
    BINARY_REQUEUED = "binary.requeued"
    BINARY_UPLOAD_CLEANED = "binary.upload_cleaned"
    BINARY_INTEGRITY_FAILED = "binary.integrity_failed"
    ARTIFACT_CREATED = "artifact.created"
    ARTIFACT_UPDATED = "artifact.updated"
    ARTIFACT_DELETED = "artifact.deleted"
    ARTIFACT_VERSION_CREATED = "artifact_version.created"
    ARTIFACT_VERSION_UPDATED = "artifact_version.updated"
    ARTIFACT_VERSION_DELETED = "artifact_version.deleted"
    BINARY_SIGNATURE_CREATED = "binary_signature.created"
    BINARY_SIGNATURE_DELETED = "binary_signature.deleted"
    DOWNLOAD_URL_ISSUED = "download_url.issued"
    SIGNING_KEY_CREATED = "signing_key.created"
    SIGNING_KEY_UPDATED = "signing_key.updated"
    SIGNING_KEY_REVOKED = "signing_key.revoked"
    API_KEY_CREATED = "api_key.created"
    API_KEY_UPDATED = "api_key.updated"
    API_KEY_REVOKED = "api_key.revoked"
    MEMBERSHIP_INVITED = "membership.invited"
    MEMBERSHIP_INVITATION_DECLINED = "membership.invitation_declined"
    MEMBERSHIP_INVITATION_CANCELLED = "membership.invitation_cancelled"
    MEMBERSHIP_ADDED = "membership.added"
    MEMBERSHIP_CHANGED = "membership.changed"
    MEMBERSHIP_REMOVED = "membership.removed"
    ORGANIZATION_CREATED = "organization.created"
    ORGANIZATION_UPDATED = "organization.updated"
    USER_UPDATED = "user.updated"


class EventSource(models.TextChoices):
    """Where a change came from (Actor.source)."""

    API = "api"
    CONSOLE = "console"
    CLI = "cli"
    ADMIN = "admin"
    TASK = "task"


class AuditEvent(AppendOnlyModel):
    """Who did what, for everything that is not a binary's own event (those are BinaryEvents,
    read with these as one trail by binaries.timeline). Append-only."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=160)
    action = models.CharField(max_length=64, choices=AuditAction.choices)
    source = models.CharField(max_length=16, choices=EventSource.choices, blank=True)
    object_prn = models.CharField(max_length=256, blank=True)
    # The before/after of each changed field: {"changes": {field: [before, after]}}, and
    # whatever else identifies what was done.
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["organization", "at", "id"]),
            models.Index(fields=["organization", "action", "at", "id"]),
            models.Index(fields=["organization", "source", "at", "id"]),
            models.Index(fields=["organization", "actor_user", "at", "id"]),
            models.Index(fields=["organization", "actor_label", "at", "id"]),
            models.Index(fields=["object_prn", "at", "id"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_prn} by {self.actor_label}"


class LoginFailure(models.Model):
    """Failed log-ins counted under one key (a username's digest or a client address) while
    the last one is younger than LOGIN_FAILURE_WINDOW_SECONDS (accounts/throttle.py)."""

    key = models.CharField(max_length=80, unique=True)
    count = models.PositiveIntegerField(default=1)
    last_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["last_at"])]

    def __str__(self) -> str:
        return f"{self.count} failed log-ins for {self.key}"
