"""Thin Celery tasks: take an id, call a service, retry transient failures."""

import logging

from celery import shared_task
from django.utils import timezone

from binaries import hashing, janitor, storage
from binaries.models import Binary

log = logging.getLogger(__name__)


def enqueue_verification(binary_id: int) -> None:
    """Queue verification after commit. If the broker is down, the sweeper queues it later."""
    Binary.objects.filter(pk=binary_id).update(verification_queued_at=timezone.now())
    try:
        verify_binary.delay(binary_id)
    except Exception:  # the request already committed; never fail it over the broker
        log.exception("Could not queue verification of binary %s; the sweeper will", binary_id)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=8,
    ignore_result=True,
)
def verify_binary(self, binary_id: int) -> str:
    try:
        return hashing.verify(binary_id)
    except storage.StorageError as exc:
        log.warning("Verifying binary %s failed (%s); retrying", binary_id, exc)
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc


@shared_task(acks_late=True, ignore_result=True)
def sweep() -> int:
    ids = hashing.sweep()
    for binary_id in ids:
        try:
            verify_binary.delay(binary_id)
        except Exception:
            log.exception("Could not re-queue binary %s", binary_id)
    return len(ids)


@shared_task(acks_late=True, ignore_result=True)
def scrub(limit: int = 10) -> int:
    done = 0
    for binary in hashing.due_for_scrub()[:limit]:
        claimed_at = hashing.claim_for_scrub(binary)
        if claimed_at is None:
            continue  # an overlapping run took it
        try:
            hashing.scrub_one(binary)
        except storage.StorageError:
            hashing.release_scrub_claim(binary, claimed_at)
            log.warning("Scrub of %s failed; it stays due", binary.prn, exc_info=True)
        done += 1
    return done


@shared_task(acks_late=True, ignore_result=True)
def clean_abandoned_uploads() -> int:
    for binary_id in janitor.destroyed_with_content():
        enqueue_discard(binary_id)
    return len(janitor.clean_abandoned_uploads())


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


@shared_task(bind=True, acks_late=True, max_retries=12, ignore_result=True)
def discard_reset_content(self, binary_id: int, upload_id: str | None = None) -> bool:
    # 12 retries, backing off to 10 minutes: about two hours of an unreachable store.
    try:
        return janitor.discard_reset_content(binary_id, upload_id)
    except storage.StorageError as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 600)) from exc


@shared_task(bind=True, acks_late=True, max_retries=12, ignore_result=True)
def discard_content(self, binary_id: int) -> bool:
    # About two hours of retries; after that the hourly janitor queues it again (the record
    # says the content is not confirmed gone), so a long outage never ends in a lost delete.
    try:
        return janitor.discard_destroyed_content(binary_id)
    except storage.StorageError as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 600)) from exc
