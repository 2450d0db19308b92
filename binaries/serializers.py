"""One plain-dict shape per object, shared by the JSON API, the console and the CLI-facing code.

PRNs are built from the organization's uuid and each object's own uuid, so serializing a page
needs no query beyond the one that loaded the rows with their organization and parent.
"""

from datetime import UTC, datetime
from typing import Any

from binaries.models import (
    Artifact,
    ArtifactVersion,
    Binary,
    BinaryPart,
    BinarySignature,
    SigningKey,
)
from peridio_console.core.prn import format_prn


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, to the microsecond so values round-trip into search clauses."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamps(obj: Any) -> dict[str, str | None]:
    created = iso(obj.created_at)
    return {"created_at": created, "inserted_at": created, "updated_at": iso(obj.updated_at)}


def artifact_data(artifact: Artifact) -> dict[str, Any]:
    return {
        "prn": artifact.prn,
        "organization_prn": artifact.organization.prn,
        "name": artifact.name,
        "description": artifact.description,
        "custom_metadata": artifact.custom_metadata,
        **_timestamps(artifact),
    }


def artifact_version_data(version: ArtifactVersion) -> dict[str, Any]:
    return {
        "prn": version.prn,
        "artifact_prn": format_prn(version.organization.uuid, "artifact", version.artifact.uuid),
        "organization_prn": version.organization.prn,
        "version": version.version,
        "description": version.description,
        "custom_metadata": version.custom_metadata,
        **_timestamps(version),
    }


def binary_data(binary: Binary) -> dict[str, Any]:
    """A binary with its signatures (prefetch `signatures__signing_key` for lists)."""
    signatures = list(binary.signatures.all())
    live = [s for s in signatures if s.revoked_at is None]
    status = "valid" if live else ("revoked" if signatures else "unsigned")
    return {
        "prn": binary.prn,
        "organization_prn": binary.organization.prn,
        "artifact_version_prn": format_prn(
            binary.organization.uuid, "artifact_version", binary.artifact_version.uuid
        ),
        "target": binary.target,
        "hash": binary.hash_display,
        "size": binary.size,
        "state": binary.state,
        "custom_metadata": binary.custom_metadata,
        "description": binary.description,
        "last_error": binary.last_error,
        "bytes_hashed": binary.bytes_hashed,
        "signatures": [binary_signature_data(s) for s in signatures],
        "signature_status": status,
        "integrity_failed_at": iso(binary.integrity_failed_at),
        **_timestamps(binary),
    }


def binary_part_data(part: BinaryPart) -> dict[str, Any]:
    binary = part.binary
    return {
        "prn": format_prn(binary.organization.uuid, "binary_part", part.uuid),
        "binary_prn": binary.prn,
        "index": part.index,
        "hash": f"sha256:{part.hash}",
        "size": part.size,
        "state": part.state,
        "last_error": part.last_error,
        **_timestamps(part),
    }


def signing_key_data(key: SigningKey) -> dict[str, Any]:
    return {
        "prn": key.prn,
        "organization_prn": key.organization.prn,
        "name": key.name,
        "algorithm": key.algorithm,
        "value": key.public_key_pem,
        "keyid": key.keyid,
        "revoked_at": iso(key.revoked_at),
        **_timestamps(key),
    }


def binary_signature_data(signature: BinarySignature) -> dict[str, Any]:
    binary, key = signature.binary, signature.signing_key
    return {
        "prn": format_prn(binary.organization.uuid, "binary_signature", signature.uuid),
        "binary_prn": binary.prn,
        "signing_key_prn": format_prn(binary.organization.uuid, "signing_key", key.uuid),
        "keyid": key.keyid,
        "signature": bytes(signature.signature).hex(),
        "scheme": signature.scheme,
        "revoked_at": iso(signature.revoked_at),
        **_timestamps(signature),
    }
