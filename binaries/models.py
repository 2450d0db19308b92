"""The domain: artifacts, their versions, binaries and the append-only record of every move."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from binaries.validation import MAX_SIZE
from peridio_console.accounts.models import ApiKey, AuditAction, EventSource, Organization
from peridio_console.core.append_only import AppendOnlyModel
from peridio_console.core.prn import format_prn


class State(models.TextChoices):
    UPLOADABLE = "uploadable"
    HASHABLE = "hashable"
    HASHING = "hashing"
    SIGNABLE = "signable"
    SIGNED = "signed"
    DESTROYED = "destroyed"


class Artifact(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="artifacts"
    )
    name = models.CharField(max_length=128)
    description = models.CharField(max_length=256, blank=True)
    custom_metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="artifact_name_unique_in_org"
            ),
        ]
        indexes = [models.Index(fields=["organization", "created_at", "id"])]

    def __str__(self) -> str:
        return self.name

    @property
    def prn(self) -> str:
        return format_prn(self.organization.uuid, "artifact", self.uuid)


class ArtifactVersion(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    artifact = models.ForeignKey(Artifact, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=128)
    description = models.CharField(max_length=256, blank=True)
    custom_metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["artifact", "version"], name="version_unique_in_artifact"
            ),
        ]
        indexes = [models.Index(fields=["organization", "created_at", "id"])]

    def __str__(self) -> str:
        return f"{self.artifact.name} {self.version}"

    @property
    def prn(self) -> str:
        return format_prn(self.organization.uuid, "artifact_version", self.uuid)


class Binary(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    artifact_version = models.ForeignKey(
        ArtifactVersion, on_delete=models.PROTECT, related_name="binaries"
    )
    target = models.CharField(max_length=128)
    # Declared by the client (lowercase hex, no prefix); may arrive after creation while uploadable.
    hash = models.CharField(max_length=64, null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    # Only lifecycle.transition() writes this column.
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.UPLOADABLE, editable=False
    )
    custom_metadata = models.JSONField(default=dict, blank=True)
    description = models.CharField(max_length=256, blank=True)
    last_error = models.TextField(blank=True)
    verified_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)
    bytes_hashed = models.BigIntegerField(default=0, editable=False)
    hashing_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    hashing_heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    integrity_failed_at = models.DateTimeField(null=True, blank=True, editable=False)
    verification_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    scrubbed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set once a destroyed binary's content is confirmed gone from storage.
    content_deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The object store's multipart upload in progress (S3), if any.
    upload_id = models.CharField(max_length=1024, null=True, blank=True, editable=False)
    # Running totals of the parts declared so far, kept by uploads.part_declare under this
    # row's lock (and zeroed with the parts), so that a declaration reads no other part.
    parts_count = models.PositiveIntegerField(default=0, editable=False)
    parts_bytes = models.PositiveBigIntegerField(default=0, editable=False)
    parts_max_index = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "binaries"
        constraints = [
            models.UniqueConstraint(
                fields=["artifact_version", "target"],
                condition=~models.Q(state="destroyed"),
                name="one_live_binary_per_version_target",
            ),
            models.CheckConstraint(
                condition=models.Q(size__isnull=True) | models.Q(size__gte=0, size__lte=MAX_SIZE),
                name="binary_size_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=State.values), name="binary_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(parts_count__lte=models.F("parts_max_index")),
                name="binary_parts_count_within_max_index",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "state"]),
            models.Index(fields=["artifact_version", "target"]),
            models.Index(fields=["created_at"]),
            models.Index(fields=["organization", "created_at", "id"]),
            models.Index(fields=["artifact_version", "created_at", "id"]),
            models.Index(fields=["organization", "target", "created_at", "id"]),
        ]

    def __str__(self) -> str:
        return f"{self.target} ({self.state})"

    @property
    def prn(self) -> str:
        return format_prn(self.organization.uuid, "binary", self.uuid)

    @property
    def hash_display(self) -> str | None:
        return f"sha256:{self.hash}" if self.hash else None


class BinaryEvent(AppendOnlyModel):
    """One row per change to a binary: its creation, each lifecycle move, each edit, and each
    event that is not a move (a re-queue, an integrity failure, an upload cleaned), with its
    action written when it happens. Append-only."""

    binary = models.ForeignKey(Binary, on_delete=models.PROTECT, related_name="events")
    # The binary's, copied so that the organization's trail is read from this table's indexes.
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=64, choices=AuditAction.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=160)
    source = models.CharField(max_length=16, choices=EventSource.choices, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["binary", "at", "id"]),
            models.Index(fields=["organization", "at", "id"]),
            models.Index(fields=["organization", "action", "at", "id"]),
            models.Index(fields=["organization", "source", "at", "id"]),
            models.Index(fields=["organization", "actor_user", "at", "id"]),
            models.Index(fields=["organization", "actor_label", "at", "id"]),
        ]

    def __str__(self) -> str:
        return (
            f"{self.action} ({self.from_state or '(new)'} → {self.to_state}) by {self.actor_label}"
        )


class PartState(models.TextChoices):
    UPLOADABLE = "uploadable"
    VALID = "valid"
    INVALID_HASH = "invalid_hash"
    INVALID_SIZE = "invalid_size"


MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last (S3's rule)
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PART_INDEX = 10_000


class BinaryPart(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    binary = models.ForeignKey(Binary, on_delete=models.CASCADE, related_name="parts")
    index = models.PositiveIntegerField()
    hash = models.CharField(max_length=64)
    size = models.BigIntegerField()
    state = models.CharField(max_length=16, choices=PartState.choices, default=PartState.UPLOADABLE)
    # Changes each time the part is (re)declared, so upload URLs of an older declaration die.
    token = models.CharField(max_length=32, editable=False)
    # Filesystem backend: where the bytes were written in the object being assembled.
    offset = models.BigIntegerField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["binary", "index"], name="one_part_per_index"),
            models.CheckConstraint(
                condition=models.Q(index__gte=1, index__lte=MAX_PART_INDEX),
                name="part_index_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(size__gte=0, size__lte=MAX_PART_SIZE), name="part_size_in_range"
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=PartState.values), name="part_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"part {self.index} of {self.binary_id} ({self.state})"

    @property
    def prn(self) -> str:
        return format_prn(self.binary.organization.uuid, "binary_part", self.uuid)


class KeyAlgorithm(models.TextChoices):
    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    RSA = "rsa"


class SignatureScheme(models.TextChoices):
    ED25519_HEX_DIGEST = "ed25519-hex-digest"
    ED25519_RAW_DIGEST = "ed25519-raw-digest"
    RSA_PKCS1V15_SHA256 = "rsa-pkcs1v15-sha256"
    RSA_PSS_SHA256 = "rsa-pss-sha256"
    ECDSA_SHA256 = "ecdsa-sha256"


class SigningKey(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=128)
    algorithm = models.CharField(max_length=16, choices=KeyAlgorithm.choices)
    public_key_pem = models.TextField()
    keyid = models.CharField(max_length=64)  # hex SHA-256 of the DER SubjectPublicKeyInfo
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "keyid"], name="one_key_per_keyid"),
        ]
        indexes = [models.Index(fields=["organization", "created_at", "id"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.algorithm})"

    @property
    def prn(self) -> str:
        return format_prn(self.organization.uuid, "signing_key", self.uuid)


class BinarySignature(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    binary = models.ForeignKey(Binary, on_delete=models.PROTECT, related_name="signatures")
    signing_key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="signatures")
    signature = models.BinaryField()
    scheme = models.CharField(max_length=32, choices=SignatureScheme.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    # Set when its key is revoked; the signature stays for history but no longer counts.
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["binary", "created_at"])]
        constraints = [
            # A key signs a binary once (to sign again, remove its signature first).
            models.UniqueConstraint(fields=["binary", "signing_key"], name="one_signature_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.scheme} signature of {self.binary_id}"

    @property
    def prn(self) -> str:
        return format_prn(self.binary.organization.uuid, "binary_signature", self.uuid)


class DownloadServed(models.Model):
    """One response of the filesystem backend's download endpoint that sent content: the bytes
    it sent, and whether it delivered the content's last byte (a completed download; a resumed
    one completes with its last range). Presigned and CloudFront URLs serve bytes elsewhere:
    only the URLs issued (audit events) are known for them."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    binary = models.ForeignKey(Binary, on_delete=models.CASCADE, related_name="+")
    bytes_served = models.BigIntegerField()
    completed = models.BooleanField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "at"]),
            models.Index(fields=["binary", "at"]),
        ]

    def __str__(self) -> str:
        done = " (completed)" if self.completed else ""
        return f"{self.bytes_served} bytes of binary {self.binary_id}{done}"
