"""Writes. Each service validates, changes rows in one short transaction, and leaves slow
work (storage, task enqueues) to run after commit."""

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from binaries import lifecycle, moves
from binaries.models import Artifact, ArtifactVersion, Binary, State
from binaries.validation import (
    clean_custom_metadata,
    clean_description,
    clean_hash,
    clean_name,
    clean_size,
    clean_target,
)
from peridio_console.accounts import audit
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditAction, Organization
from peridio_console.core.errors import Conflict, InvalidInput, conflict_on_integrity_error

UNSET: Any = object()
CLEANERS: dict[str, Callable[[Any], Any]] = {
    "name": clean_name,
    "description": clean_description,
    "custom_metadata": clean_custom_metadata,
    "hash": lambda value: None if value is None else clean_hash(value),
    "size": lambda value: None if value is None else clean_size(value),
}


def _cleaned(**given: Any) -> dict[str, Any]:
    """The fields a change names (UNSET ones left out), each through its cleaner."""
    return {field: CLEANERS[field](value) for field, value in given.items() if value is not UNSET}


DESCRIBED = ("name", "description", "custom_metadata")


def _record(obj: Any, action: AuditAction, actor: Actor, before: dict, after: dict) -> None:
    """One audit event for an artifact or version: its PRN and each changed field's
    [before, after] (nothing when nothing changed)."""
    changed = audit.changes(before, after)
    if changed:
        audit.record(
            organization=obj.organization,
            actor=actor,
            action=action,
            object_prn=obj.prn,
            details={"changes": changed},
        )


def _described(obj: Any, fields: Any = DESCRIBED) -> dict[str, Any]:
    return {field: getattr(obj, field) for field in fields if hasattr(obj, field)}


def artifact_create(
    *,
    organization: Organization,
    actor: Actor,
    name: Any,
    description: Any = None,
    custom_metadata: Any = None,
) -> Artifact:
    artifact = Artifact(
        organization=organization,
        name=clean_name(name),
        description=clean_description(description),
        custom_metadata=clean_custom_metadata(custom_metadata),
    )
    with conflict_on_integrity_error(
        Conflict(
            f"An artifact named {artifact.name!r} already exists in this organization.",
            field="name",
            code="already_exists",
        )
    ):
        artifact.save()
        _record(artifact, AuditAction.ARTIFACT_CREATED, actor, {}, _described(artifact))
    return artifact


def artifact_version_create(
    *,
    artifact: Artifact,
    actor: Actor,
    version: Any,
    description: Any = None,
    custom_metadata: Any = None,
) -> ArtifactVersion:
    obj = ArtifactVersion(
        organization=artifact.organization,
        artifact=artifact,
        version=clean_name(version, "version"),
        description=clean_description(description),
        custom_metadata=clean_custom_metadata(custom_metadata),
    )
    with conflict_on_integrity_error(
        Conflict(
            f"Artifact {artifact.name!r} already has a version {obj.version!r}.",
            field="version",
            code="already_exists",
        )
    ):
        obj.save()
        after = {"artifact_prn": artifact.prn, "version": obj.version, **_described(obj)}
        _record(obj, AuditAction.ARTIFACT_VERSION_CREATED, actor, {}, after)
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
    with conflict_on_integrity_error(lambda: _target_taken(artifact_version, binary.target)):
        binary.save()
        lifecycle.record_creation(binary, actor=actor)
    return binary


def binary_update(
    *,
    binary: Binary,
    actor: Actor,
    description: Any = UNSET,
    custom_metadata: Any = UNSET,
    hash: Any = UNSET,
    size: Any = UNSET,
) -> Binary:
    """Change a binary's descriptive fields; hash and size only while it is uploadable."""
    fields = _cleaned(description=description, custom_metadata=custom_metadata)
    content = _cleaned(hash=hash, size=size)
    if not fields and not content:
        return binary
    with transaction.atomic():
        query = Binary.objects.select_for_update().filter(pk=binary.pk)
        before = query.values(*fields, *content).first() or {}
        if content:
            query = query.filter(state=State.UPLOADABLE)
        changed = query.update(updated_at=timezone.now(), **fields, **content)
        edits = audit.changes(before, {**fields, **content}) if changed == 1 else {}
        if edits:
            lifecycle.record_event(
                binary,
                actor=actor,
                action=AuditAction.BINARY_UPDATED,
                reason="",
                details={"changes": edits},
            )
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


# --- API edits and deletions -------------------------------------------------------------

MAX_REASON = 1000


def clean_reason(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_REASON:
        got = f"{len(value)} characters" if isinstance(value, str) else repr(value)
        raise InvalidInput(
            f"reason must be text of at most {MAX_REASON} characters; got {got}.", field="reason"
        )
    return value.strip()


def artifact_update(
    *,
    artifact: Artifact,
    actor: Actor,
    name: Any = UNSET,
    description: Any = UNSET,
    custom_metadata: Any = UNSET,
) -> Artifact:
    fields = _cleaned(name=name, description=description, custom_metadata=custom_metadata)
    if not fields:
        return artifact
    with (
        transaction.atomic(),
        conflict_on_integrity_error(
            lambda: Conflict(
                f"An artifact named {fields['name']!r} already exists in this organization.",
                field="name",
                code="already_exists",
            )
        ),
    ):
        rows = Artifact.objects.select_for_update().filter(pk=artifact.pk)
        before = rows.values(*fields).get()
        rows.update(updated_at=timezone.now(), **fields)
        _record(artifact, AuditAction.ARTIFACT_UPDATED, actor, before, fields)
    artifact.refresh_from_db()
    return artifact


def artifact_version_update(
    *,
    artifact_version: ArtifactVersion,
    actor: Actor,
    description: Any = UNSET,
    custom_metadata: Any = UNSET,
) -> ArtifactVersion:
    fields = _cleaned(description=description, custom_metadata=custom_metadata)
    if fields:
        with transaction.atomic():
            rows = ArtifactVersion.objects.select_for_update().filter(pk=artifact_version.pk)
            before = rows.values(*fields).get()
            rows.update(updated_at=timezone.now(), **fields)
            _record(artifact_version, AuditAction.ARTIFACT_VERSION_UPDATED, actor, before, fields)
        artifact_version.refresh_from_db()
    return artifact_version


def _binaries_blocking(what: str, binaries: Any) -> None:
    """Refuse to delete `what` while binaries hang below it, naming them.

    Destroyed binaries block too: their records and events are kept for ever (the audit
    trail), and they hold on to their version and artifact.
    """
    live = binaries.exclude(state=State.DESTROYED).order_by("created_at", "id")
    count = live.count()
    if count:
        shown = ", ".join(f"{b.prn} ({b.target}, {b.state})" for b in live[:3])
        more = f" and {count - 3} more" if count > 3 else ""
        raise Conflict(
            f"{what} still has {count} binar{'y' if count == 1 else 'ies'} that "
            f"{'is' if count == 1 else 'are'} not destroyed: {shown}{more}; destroy "
            f"{'it' if count == 1 else 'them'} first.",
            code="has_binaries",
        )
    destroyed = binaries.count()
    if destroyed:
        raise Conflict(
            f"{what} has {destroyed} destroyed binar{'y' if destroyed == 1 else 'ies'} whose "
            "records are kept for the audit trail, so it cannot be deleted.",
            code="has_destroyed_binaries",
        )


def _delete_unless_binaries(what: str, binaries: Any, delete: Callable[[], object]) -> None:
    """Delete (in one transaction) only while no binary hangs below; one arriving meanwhile
    (ProtectedError is an IntegrityError) keeps it too."""
    with conflict_on_integrity_error(
        Conflict(
            f"{what} gained a binary while it was being deleted; it was kept.", code="has_binaries"
        )
    ):
        _binaries_blocking(what, binaries)
        delete()


def _version_delete(version: ArtifactVersion, actor: Actor) -> None:
    before = {"version": version.version, **_described(version)}
    version.delete()
    _record(version, AuditAction.ARTIFACT_VERSION_DELETED, actor, before, {})


def artifact_version_delete(*, artifact_version: ArtifactVersion, actor: Actor) -> None:
    _delete_unless_binaries(
        f"Version {artifact_version.version!r} of {artifact_version.artifact.name!r}",
        Binary.objects.filter(artifact_version=artifact_version),
        lambda: _version_delete(artifact_version, actor),
    )


def artifact_delete(*, artifact: Artifact, actor: Actor) -> None:
    """Delete an artifact with its versions, when no binary (live or destroyed) hangs below;
    one event for the artifact and one for each version deleted with it."""

    def delete_with_versions() -> None:
        for version in ArtifactVersion.objects.filter(artifact=artifact).order_by("id"):
            _version_delete(version, actor)
        before = _described(artifact)
        artifact.delete()
        _record(artifact, AuditAction.ARTIFACT_DELETED, actor, before, {})

    _delete_unless_binaries(
        f"Artifact {artifact.name!r}",
        Binary.objects.filter(artifact_version__artifact=artifact),
        delete_with_versions,
    )


def binary_change(
    *,
    binary: Binary,
    actor: Actor,
    description: Any = UNSET,
    custom_metadata: Any = UNSET,
    hash: Any = UNSET,
    size: Any = UNSET,
    state: Any = UNSET,
    reason: Any = UNSET,
) -> Binary:
    """An API PATCH: field edits first (hash and size only while uploadable), then the move.

    An impossible move is refused before the fields change; a move that races with another
    request can still be refused after them (the fields stay changed, the 409 says why).
    """
    if state is UNSET:
        if reason is not UNSET:
            raise InvalidInput(
                "reason goes with state: it records why the binary moved.", field="reason"
            )
    else:
        moves.check_request(binary, state)
    why = clean_reason(None if reason is UNSET else reason)
    binary = binary_update(
        binary=binary,
        actor=actor,
        description=description,
        custom_metadata=custom_metadata,
        hash=hash,
        size=size,
    )
    if state is not UNSET:
        binary = moves.request_state(binary=binary, to=state, actor=actor, reason=why)
    return binary
