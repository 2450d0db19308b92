"""The one description of each object the JSON API answers with: a typed model and its builder.

The API answers with these models (their JSON schema is the OpenAPI document's), the console
shows a binary's record as BinaryOut, the upload endpoint answers with BinaryPartOut and the
audit timeline builds AuditEventOut. Fields are declared in the order the JSON's keys come, and
no model takes a key it does not declare, so the schema and the JSON cannot drift apart.

PRNs are built from the organization's uuid and each object's own uuid, so serializing a page
needs no query beyond the one that loaded the rows with their organization and parent.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Self, overload

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from binaries.models import (
    Artifact,
    ArtifactVersion,
    Binary,
    BinaryPart,
    BinarySignature,
    SigningKey,
    State,
)
from binaries.signatures import signature_status
from peridio_console.core.prn import format_prn

Metadata = dict[str, Any]
STATES: JsonDict = {"enum": list(State.values)}
TIMESTAMP: JsonDict = {"format": "date-time", "example": "2024-01-15T10:30:00.000000Z"}
Timestamp = Annotated[str, Field(json_schema_extra=TIMESTAMP)]
MaybeTimestamp = Annotated[str | None, Field(json_schema_extra=TIMESTAMP)]


@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
@overload
def iso(moment: datetime | None) -> str | None: ...
def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, to the microsecond so values round-trip into search clauses."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamps(obj: Any) -> dict[str, str]:
    created = iso(obj.created_at)
    return {"created_at": created, "inserted_at": created, "updated_at": iso(obj.updated_at)}


class Out(BaseModel):
    # A key the builder gains before its field does fails at once instead of reaching clients.
    model_config = ConfigDict(extra="forbid")


class ArtifactOut(Out):
    prn: str
    organization_prn: str
    name: str
    description: str
    custom_metadata: Metadata
    created_at: Timestamp
    inserted_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_model(cls, artifact: Artifact) -> Self:
        return cls(
            prn=artifact.prn,
            organization_prn=artifact.organization.prn,
            name=artifact.name,
            description=artifact.description,
            custom_metadata=artifact.custom_metadata,
            **_timestamps(artifact),
        )


class ArtifactVersionOut(Out):
    prn: str
    artifact_prn: str
    organization_prn: str
    version: str
    description: str
    custom_metadata: Metadata
    created_at: Timestamp
    inserted_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_model(cls, version: ArtifactVersion) -> Self:
        return cls(
            prn=version.prn,
            artifact_prn=format_prn(version.organization.uuid, "artifact", version.artifact.uuid),
            organization_prn=version.organization.prn,
            version=version.version,
            description=version.description,
            custom_metadata=version.custom_metadata,
            **_timestamps(version),
        )


class BinarySignatureOut(Out):
    prn: str
    binary_prn: str
    signing_key_prn: str
    keyid: str
    signature: str = Field(..., description="Hex.")
    scheme: str
    revoked_at: MaybeTimestamp = None
    created_at: Timestamp
    inserted_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_model(cls, signature: BinarySignature) -> Self:
        binary, key = signature.binary, signature.signing_key
        return cls(
            prn=format_prn(binary.organization.uuid, "binary_signature", signature.uuid),
            binary_prn=binary.prn,
            signing_key_prn=format_prn(binary.organization.uuid, "signing_key", key.uuid),
            keyid=key.keyid,
            signature=bytes(signature.signature).hex(),
            scheme=signature.scheme,
            revoked_at=iso(signature.revoked_at),
            **_timestamps(signature),
        )


class BinaryOut(Out):
    prn: str
    organization_prn: str
    artifact_version_prn: str
    target: str
    hash: str | None
    size: int | None
    state: str = Field(..., json_schema_extra=STATES)
    custom_metadata: Metadata
    description: str
    last_error: str
    bytes_hashed: int = Field(..., description="Hashing progress, in bytes.")
    signatures: list[BinarySignatureOut]
    signature_status: str = Field(..., json_schema_extra={"enum": ["unsigned", "valid", "revoked"]})
    integrity_failed_at: MaybeTimestamp = None
    created_at: Timestamp
    inserted_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_model(cls, binary: Binary) -> Self:
        """A binary with its signatures (prefetch `signatures__signing_key` for lists)."""
        signatures = list(binary.signatures.all())
        status = signature_status(binary, signatures)
        return cls(
            prn=binary.prn,
            organization_prn=binary.organization.prn,
            artifact_version_prn=format_prn(
                binary.organization.uuid, "artifact_version", binary.artifact_version.uuid
            ),
            target=binary.target,
            hash=binary.hash_display,
            size=binary.size,
            state=binary.state,
            custom_metadata=binary.custom_metadata,
            description=binary.description,
            last_error=binary.last_error,
            bytes_hashed=binary.bytes_hashed,
            signatures=[BinarySignatureOut.from_model(s) for s in signatures],
            signature_status=status,
            integrity_failed_at=iso(binary.integrity_failed_at),
            **_timestamps(binary),
        )


class BinaryPartOut(Out):
    prn: str
    binary_prn: str
    index: int
    hash: str = Field(..., description="sha256:<64 hex>")
    size: int
    state: str = Field(
        ..., json_schema_extra={"enum": ["uploadable", "valid", "invalid_hash", "invalid_size"]}
    )
    last_error: str
    created_at: Timestamp
    inserted_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_model(cls, part: BinaryPart) -> Self:
        binary = part.binary
        return cls(
            prn=format_prn(binary.organization.uuid, "binary_part", part.uuid),
            binary_prn=binary.prn,
            index=part.index,
            hash=f"sha256:{part.hash}",
            size=part.size,
            state=part.state,
            last_error=part.last_error,
            **_timestamps(part),
        )


class SigningKeyOut(Out):
    prn: str
    organization_prn: str
    name: str
    algorithm: str
    value: str = Field(..., description="The public key, PEM.")
    keyid: str
    revoked_at: MaybeTimestamp = None
    created_at: Timestamp
    inserted_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_model(cls, key: SigningKey) -> Self:
        return cls(
            prn=key.prn,
            organization_prn=key.organization.prn,
            name=key.name,
            algorithm=key.algorithm,
            value=key.public_key_pem,
            keyid=key.keyid,
            revoked_at=iso(key.revoked_at),
            **_timestamps(key),
        )


class AuditEventOut(Out):
    """One entry of the audit trail: a binary's lifecycle move or another audited action."""

    # Built by binaries.timeline.entry, from a BinaryEvent or an AuditEvent.
    id: str = Field(..., description="be_<n> for a binary's event, ae_<n> for another event.")
    action: str = Field(..., examples=["binary.signed"])
    source: str | None = Field(
        ..., description="api, console, cli, admin or task; null when not recorded."
    )
    user_agent: str
    object_prn: str
    from_state: str | None = Field(..., description="Lifecycle moves only; null for a creation.")
    to_state: str | None = Field(..., description="Lifecycle moves only.")
    reason: str
    details: Metadata
    ip: str | None
    at: Timestamp
    actor: str
    actor_api_key: str | None = Field(..., description="The prefix of the API key used, if any.")
