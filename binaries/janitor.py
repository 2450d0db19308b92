"""Abandoned uploads: binaries left uploadable and untouched for too long lose their parts.

Untouched means neither the binary nor any of its parts changed since the cutoff: declaring or
receiving a part touches the part, not the binary, so a long upload being resumed stays.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from binaries import lifecycle, storage
from binaries.models import Binary, BinaryPart, State
from peridio_console.actors import Actor

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
        # Storage first, then the rows: a failure leaves the parts listed for the next run.
        storage.get().delete(binary)
        with transaction.atomic():
            if binary.upload_id:
                # That multipart upload is aborted whatever happens next: never leave the row
                # pointing at it, or every later part would go to an upload that is gone.
                Binary.objects.filter(pk=binary.pk, upload_id=binary.upload_id).update(
                    upload_id=None
                )
            changed = Binary.objects.filter(
                pk=binary.pk, state=State.UPLOADABLE, updated_at=binary.updated_at
            ).update(upload_id=None, updated_at=now)
            if not changed:
                continue  # touched meanwhile: it is not abandoned
            count = BinaryPart.objects.filter(binary=binary).count()
            BinaryPart.objects.filter(binary=binary).delete()
            lifecycle.record_event(
                binary,
                actor=JANITOR,
                reason=(
                    f"Upload abandoned for over {settings.ABANDONED_UPLOAD_DAYS} days: "
                    f"{count} part(s) and their bytes removed."
                ),
                details={"parts_removed": count},
            )
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
