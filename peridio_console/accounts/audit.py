"""Record audit events: one row per thing done that is not a lifecycle move."""

from typing import Any

from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditEvent, Organization


def record(
    *,
    organization: Organization,
    actor: Actor,
    action: str,
    object_prn: str = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        organization=organization,
        **actor.event_fields(),
        action=action,
        object_prn=object_prn,
        details=details or {},
        ip=ip or actor.ip,
    )
