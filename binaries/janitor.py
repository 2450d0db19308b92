"""Abandoned uploads: binaries left uploadable and untouched for too long lose their parts.

Untouched means neither the binary nor any of its parts changed since the cutoff: declaring or
receiving a part touches the part, not the binary, so a long upload being resumed stays.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from binaries import uploads
from binaries.models import Binary, BinaryPart, State
from peridio_console.accounts.actors import Actor

JANITOR = Actor.system("janitor")


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
