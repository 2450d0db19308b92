"""One plain-dict shape per object, shared by the JSON API, the console and the CLI-facing code.

PRNs are built from the organization's uuid and each object's own uuid, so serializing a page
needs no query beyond the one that loaded the rows with their organization and parent.
"""

from datetime import UTC, datetime
from typing import Any

from binaries.models import Artifact, ArtifactVersion, Binary, BinaryPart
from peridio_console.prn import format_prn


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, to the microsecond so values round-trip into search clauses."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamps(obj: Artifact | ArtifactVersion | Binary | BinaryPart) -> dict[str, str | None]:
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


def binary_data(binary: Binary, signatures: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`signatures` are already-serialized binary_signature objects (none until signing exists)."""
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
        "signatures": signatures or [],
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
