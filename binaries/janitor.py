"""Abandoned uploads: binaries left uploadable and untouched for too long lose their parts.

Untouched means neither the binary nor any of its parts changed since the cutoff: declaring or
receiving a part touches the part, not the binary, so a long upload being resumed stays.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from binaries import storage, uploads
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


def discard_destroyed_content(binary_id: int) -> bool:
    """Delete a destroyed binary's content and confirm it; True when it is gone."""
    binary = (
        Binary.objects.select_related("organization")
        .filter(pk=binary_id, state=State.DESTROYED, content_deleted_at__isnull=True)
        .first()
    )
    if binary is None:
        return True
    backend = storage.get()
    backend.delete(binary)
    if backend.exists(binary):
        raise storage.StorageError(f"The content of {binary.prn} is still in storage.")
    Binary.objects.filter(pk=binary.pk).update(content_deleted_at=timezone.now())
    return True


def discard_reset_content(binary_id: int, upload_id: str | None = None) -> bool:
    """Delete what a reset left in storage when the reset itself could not (the store was
    away): the object, and the multipart upload `upload_id` if it is still open.

    Only while no new upload has begun (no parts, no upload id): a new upload's completion
    replaces the object, and an abandoned one is cleaned with its parts. True when done.
    """
    binary = (
        Binary.objects.select_related("organization")
        .filter(pk=binary_id, state=State.UPLOADABLE, upload_id__isnull=True)
        .exclude(Exists(BinaryPart.objects.filter(binary=OuterRef("pk"))))
        .first()
    )
    if binary is None:
        return True
    binary.upload_id = upload_id  # not saved: only so that delete() aborts that upload
    storage.get().delete(binary)
    return True


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
