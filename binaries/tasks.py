"""Thin Celery tasks: take an id, call a service, retry transient failures.

Content deletion's own retrying tasks are in content.py (the moves that queue them sit below
this module); every task is registered when Celery imports this one.
"""

import logging
import threading
import time
from typing import Any

from celery import shared_task, signals
from django.utils import timezone

from binaries import content, hashing, janitor, storage
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
        content.enqueue_discard(binary_id)
    janitor.remove_orphans()
    return len(janitor.clean_abandoned_uploads())


# --- Redis: a live worker renews the lease of each message it holds ---------------------------

LEASE_RENEW_EVERY = 1.0  # seconds; the lease (the transport's visibility_timeout) is a few


@signals.worker_ready.connect
def _renew_leases_while_alive(sender: Any, **kwargs: Any) -> None:
    """Redis delivers an unacknowledged message again once it is older than the transport's
    visibility_timeout, whether its worker is alive or dead. Renewing the lease of every
    message this worker holds (its score in kombu's unacked index) lets that timeout be a
    few seconds: a worker killed mid-task has its work delivered again at once, and a long
    task of a live worker is never delivered twice. (RabbitMQ redelivers when a worker's
    connection drops; the filesystem broker never redelivers: the sweeper does.)"""
    channel = getattr(sender.task_consumer, "channel", None)
    if hasattr(channel, "unacked_index_key"):
        threading.Thread(
            target=_renew_leases, args=(sender,), name="lease-renewal", daemon=True
        ).start()


def _renew_leases(consumer: Any) -> None:
    while True:
        time.sleep(LEASE_RENEW_EVERY)
        try:
            channel = consumer.task_consumer.channel  # a new one after a reconnection
            held = list(channel.qos._delivered)  # the delivery tags kombu holds unacknowledged
            if held:
                leases = dict.fromkeys(held, time.time())
                with channel.conn_or_acquire() as client:
                    # xx: renew only; a message acknowledged meanwhile stays gone.
                    client.zadd(channel.unacked_index_key, leases, xx=True)
        except Exception as exc:  # the broker is away: the consumer reconnects, this goes on
            log.warning("Could not renew the broker leases of this worker's tasks: %r", exc)
