"""Record audit events: one row per change that is not a binary's own event (those are
BinaryEvents, written by binaries.lifecycle). Before/after go in details as
{"changes": {field: [before, after]}} (changes() builds it)."""

from typing import Any

from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditAction, AuditEvent, Organization


def record(
    *,
    organization: Organization,
    actor: Actor,
    action: AuditAction | str,
    object_prn: str = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    fields = actor.event_fields()
    fields["ip"] = ip or fields["ip"]
    return AuditEvent.objects.create(
        organization=organization,
        **fields,
        action=AuditAction(action),
        object_prn=object_prn,
        details=details or {},
    )


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [before, after]} for each field whose value differs, as JSON values; a field
    missing on one side is None there (a creation has no before, a deletion no after)."""
    fields = list(before) + [field for field in after if field not in before]
    return {
        field: [_plain(before.get(field)), _plain(after.get(field))]
        for field in fields
        if before.get(field) != after.get(field)
    }


def _plain(value: Any) -> Any:
    """A value as JSON keeps it (dates and UUIDs as text)."""
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
