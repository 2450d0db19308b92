"""Writes. Each service validates, changes rows in one short transaction, and leaves slow
work (storage, task enqueues) to run after commit."""

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from binaries import lifecycle
from binaries.errors import Conflict, InvalidInput
from binaries.models import Artifact, ArtifactVersion, Binary, State
from binaries.validation import (
    clean_custom_metadata,
    clean_description,
    clean_hash,
    clean_name,
    clean_size,
    clean_target,
)
from peridio_console.actors import Actor
from peridio_console.models import Organization

UNSET: Any = object()


def artifact_create(
    *, organization: Organization, name: Any, description: Any = None, custom_metadata: Any = None
) -> Artifact:
    artifact = Artifact(
        organization=organization,
        name=clean_name(name),
        description=clean_description(description),
        custom_metadata=clean_custom_metadata(custom_metadata),
    )
    try:
        with transaction.atomic():
            artifact.save()
    except IntegrityError:
        raise Conflict(
            f"An artifact named {artifact.name!r} already exists in this organization.",
            field="name",
            code="already_exists",
        ) from None
    return artifact


def artifact_version_create(
    *, artifact: Artifact, version: Any, description: Any = None, custom_metadata: Any = None
) -> ArtifactVersion:
    obj = ArtifactVersion(
        organization=artifact.organization,
        artifact=artifact,
        version=clean_name(version, "version"),
        description=clean_description(description),
        custom_metadata=clean_custom_metadata(custom_metadata),
    )
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        raise Conflict(
            f"Artifact {artifact.name!r} already has a version {obj.version!r}.",
            field="version",
            code="already_exists",
        ) from None
    return obj


def _target_taken(version: ArtifactVersion, target: str) -> Conflict:
    existing = (
        Binary.objects.filter(artifact_version=version, target=target)
        .exclude(state=State.DESTROYED)
        .first()
    )
    where = f" ({existing.prn}, {existing.state})" if existing else ""
    return Conflict(
        f"Version {version.version!r} of {version.artifact.name!r} already has a binary for "
        f"target {target!r}{where}; destroy it or use another target.",
        field="target",
        code="target_taken",
    )


def binary_create(
    *,
    artifact_version: ArtifactVersion,
    target: Any,
    actor: Actor,
    hash: Any = None,
    size: Any = None,
    description: Any = None,
    custom_metadata: Any = None,
) -> Binary:
    binary = Binary(
        organization=artifact_version.organization,
        artifact_version=artifact_version,
        target=clean_target(target),
        hash=None if hash is None else clean_hash(hash),
        size=None if size is None else clean_size(size),
        description=clean_description(description),
        custom_metadata=clean_custom_metadata(custom_metadata),
    )
    try:
        with transaction.atomic():
            binary.save()
            lifecycle.record_creation(binary, actor=actor)
    except IntegrityError:
        raise _target_taken(artifact_version, binary.target) from None
    return binary


def binary_update(
    *,
    binary: Binary,
    description: Any = UNSET,
    custom_metadata: Any = UNSET,
    hash: Any = UNSET,
    size: Any = UNSET,
) -> Binary:
    """Change a binary's descriptive fields; hash and size only while it is uploadable."""
    fields: dict[str, Any] = {}
    if description is not UNSET:
        fields["description"] = clean_description(description)
    if custom_metadata is not UNSET:
        fields["custom_metadata"] = clean_custom_metadata(custom_metadata)
    content: dict[str, Any] = {}
    if hash is not UNSET:
        content["hash"] = None if hash is None else clean_hash(hash)
    if size is not UNSET:
        content["size"] = None if size is None else clean_size(size)
    if not fields and not content:
        return binary
    query = Binary.objects.filter(pk=binary.pk)
    if content:
        query = query.filter(state=State.UPLOADABLE)
    changed = query.update(updated_at=timezone.now(), **fields, **content)
    if changed != 1:
        binary.refresh_from_db()
        names = " and ".join(sorted(content))
        raise Conflict(
            f"The binary is {binary.state}; its {names} can only change while it is uploadable "
            "(reset it to uploadable first).",
            field=sorted(content)[0],
        )
    binary.refresh_from_db()
    return binary


def ensure_not_blocked(kind: str, live_binaries: int) -> None:
    if live_binaries:
        raise Conflict(
            f"This {kind} still has {live_binaries} binar{'y' if live_binaries == 1 else 'ies'} "
            "that are not destroyed; destroy them first.",
            code="has_binaries",
        )


def require_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} is required.", field=field)
    return value


def binary_request_state(*, binary: Binary, to: Any, actor: Actor, reason: str = "") -> Binary:
    """A client's request to move a binary (API PATCH, console button, admin action, CLI).

    Asking for hashing while the binary is hashable or hashing is a no-op, not an error.
    """
    if to not in State.values:
        raise InvalidInput(
            f"state must be one of {', '.join(State.values)}; got {to!r}.", field="state"
        )
    if to == State.HASHING:
        binary.refresh_from_db()
        if binary.state in (State.HASHABLE, State.HASHING):
            return binary
        raise lifecycle.TransitionRefused(
            binary.state, to, lifecycle.allowed_client_moves(binary.state)
        )
    if to not in lifecycle.CLIENT_MOVES:
        binary.refresh_from_db()
        raise lifecycle.TransitionRefused(
            binary.state, to, lifecycle.allowed_client_moves(binary.state)
        )
    return lifecycle.transition(
        binary, to=to, actor=actor, reason=reason, only_from=lifecycle.CLIENT_MOVES[to]
    )
