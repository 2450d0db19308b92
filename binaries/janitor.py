"""Housekeeping: abandoned uploads lose their parts, and stored bytes no binary owns go.

Untouched means neither the binary nor any of its parts changed since the cutoff: declaring or
receiving a part touches the part, not the binary, so a long upload being resumed stays.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from binaries import storage, uploads
from binaries.models import Binary, BinaryPart, State
from peridio_console.accounts.actors import Actor

JANITOR = Actor.system("janitor")
ORPHAN_AGE = timedelta(hours=1)  # younger files may belong to a request still under way
log = logging.getLogger(__name__)


def clean_abandoned_uploads(now: datetime | None = None) -> list[Binary]:
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.ABANDONED_UPLOAD_DAYS)
    recent_parts = BinaryPart.objects.filter(binary=OuterRef("pk"), updated_at__gte=cutoff)
    stale = (
        Binary.objects.select_related("organization")
        .filter(state=State.UPLOADABLE, updated_at__lt=cutoff, parts__isnull=False)
        .exclude(Exists(recent_parts))
        .distinct()
    )
    cleaned = []
    for binary in stale:
        if BinaryPart.objects.filter(binary=binary, updated_at__gte=cutoff).exists():
            continue  # a part arrived since the query: the upload is alive
        removed = uploads.discard_upload(
            binary,
            actor=JANITOR,
            reason=f"Upload abandoned for over {settings.ABANDONED_UPLOAD_DAYS} days",
            untouched_since=binary.updated_at,
        )
        if removed is not None:
            cleaned.append(binary)
    return cleaned


def destroyed_with_content(now: datetime | None = None) -> list[int]:
    """Destroyed binaries whose content deletion is not yet confirmed (after a grace period)."""
    now = now or timezone.now()
    return list(
        Binary.objects.filter(
            state=State.DESTROYED,
            content_deleted_at__isnull=True,
            updated_at__lt=now - timedelta(minutes=10),
        ).values_list("pk", flat=True)
    )


def _owned(item: storage.Stored, binary: Binary | None) -> bool:
    """Whether a binary still needs what the store holds for it."""
    if binary is None:
        return False
    if item.kind == "object":
        if binary.state == State.DESTROYED:
            return binary.content_deleted_at is None  # its deletion task will see to it
        # An uploadable binary with parts may own its object too: a completion whose answer
        # was lost (S3) is recognised by it when the client marks the binary hashable again.
        return binary.state != State.UPLOADABLE or binary.parts.exists()
    if binary.state != State.UPLOADABLE:
        return False
    if item.upload_id:
        return binary.upload_id == item.upload_id
    return binary.parts.exists()


def remove_orphans(now: datetime | None = None) -> list[str]:
    """Remove what the store holds that no binary owns (older than ORPHAN_AGE, so nothing a
    request under way is writing), logging each; returns their keys."""
    cutoff = (now or timezone.now()) - ORPHAN_AGE
    backend = storage.get()
    removed = []
    for item in backend.stored():
        if item.modified_at >= cutoff:
            continue
        binary = Binary.objects.filter(uuid=item.binary_uuid).first() if item.binary_uuid else None
        if _owned(item, binary):
            continue
        backend.remove(item)
        log.warning("Removed %s from storage: no binary owns it", item.key)
        removed.append(item.key)
    return removed
