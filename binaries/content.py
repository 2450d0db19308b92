"""Deleting a binary's stored content, and the tasks that retry it until the store confirms.

The tasks live here, beside what they run (not in tasks.py), because the moves that queue them
(reset, destroy) sit below tasks.py in the import order. They keep the names they were first
queued under, so messages already in a broker still find them after an upgrade.
"""

import logging

from celery import shared_task
from django.db.models import Exists, OuterRef
from django.utils import timezone

from binaries import storage
from binaries.models import Binary, BinaryPart, State

log = logging.getLogger(__name__)


def delete_destroyed(binary_id: int) -> bool:
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
    # A discarded upload's id is kept until now, so that delete() could abort it.
    Binary.objects.filter(pk=binary.pk).update(content_deleted_at=timezone.now(), upload_id=None)
    return True


def delete_after_reset(binary_id: int, upload_id: str | None = None) -> bool:
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


def discard_now_or_later(binary: Binary) -> None:
    """After a reset: delete the content now; if the store is away, a task retries until it is
    back (nothing else would: the parts and the upload id are gone from the row, so no janitor
    finds the object later)."""
    try:
        storage.get().delete(binary)
    except storage.StorageError:
        log.exception("Could not delete the content of %s; a task will retry", binary.prn)
        enqueue_discard_reset(binary.pk, binary.upload_id)


def enqueue_discard(binary_id: int) -> None:
    """Delete a destroyed binary's content after commit; retried until it is gone."""
    try:
        discard_content.delay(binary_id)
    except Exception:  # the janitor retries binaries whose content is not confirmed gone
        log.exception("Could not queue content deletion of binary %s", binary_id)


def enqueue_discard_reset(binary_id: int, upload_id: str | None) -> None:
    """Retry deleting a reset binary's content, which the reset could not delete."""
    try:
        discard_reset_content.delay(binary_id, upload_id)
    except Exception:
        log.exception("Could not queue content deletion of reset binary %s", binary_id)


@shared_task(
    name="binaries.tasks.discard_reset_content",
    bind=True,
    acks_late=True,
    max_retries=12,
    ignore_result=True,
)
def discard_reset_content(self, binary_id: int, upload_id: str | None = None) -> bool:
    # 12 retries, backing off to 10 minutes: about two hours of an unreachable store.
    try:
        return delete_after_reset(binary_id, upload_id)
    except storage.StorageError as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 600)) from exc


@shared_task(
    name="binaries.tasks.discard_content",
    bind=True,
    acks_late=True,
    max_retries=12,
    ignore_result=True,
)
def discard_content(self, binary_id: int) -> bool:
    # About two hours of retries; after that the hourly janitor queues it again (the record
    # says the content is not confirmed gone), so a long outage never ends in a lost delete.
    try:
        return delete_destroyed(binary_id)
    except storage.StorageError as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 600)) from exc
