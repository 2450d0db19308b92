"""What the domain reports on /metrics: binaries by state and the verification queue, read from
the database when Prometheus scrapes (the same answer on every machine), and each verification's
seconds and bytes, counted by the worker process that ran it (multiprocess files: see
peridio_console/health.py).

BinariesConfig.ready() calls connect() in every process: the web registers the collector, the
worker counts its verifications.
"""

import logging
import time
from collections.abc import Iterator
from typing import Any

from celery.signals import task_postrun, task_prerun
from django.db import DatabaseError
from django.db.models import Count
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from binaries.models import Binary, State
from peridio_console import health

log = logging.getLogger(__name__)

VERIFY_TASK = "binaries.tasks.verify_binary"

VERIFICATION_SECONDS = Histogram(
    "peridio_verification_seconds",
    "Duration of verification runs (hashing the stored content), by outcome.",
    ["outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, float("inf")),
)
VERIFICATION_BYTES = Counter(
    "peridio_verification_bytes", "Bytes hashed by verification runs, by outcome.", ["outcome"]
)
_started: dict[str, float] = {}  # task id -> monotonic start, in the worker process running it


class BinariesCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = dict(
                Binary.objects.order_by()
                .values("state")
                .annotate(n=Count("id"))
                .values_list("state", "n")
            )
        except DatabaseError as exc:
            # The processes' counters still answer while the database is away (/readyz says so).
            log.warning("Metrics: could not count binaries: %s", exc)
            return
        by_state = GaugeMetricFamily("peridio_binaries", "Binaries, by state.", labels=["state"])
        for state in State.values:
            by_state.add_metric([state], counts.get(state, 0))
        yield by_state
        yield GaugeMetricFamily(
            "peridio_verifications_queued",
            "Binaries waiting for a worker to verify them (hashable).",
            value=counts.get(State.HASHABLE, 0),
        )
        yield GaugeMetricFamily(
            "peridio_verifications_running",
            "Binaries a worker is verifying now (hashing).",
            value=counts.get(State.HASHING, 0),
        )


def _verification_started(sender: Any = None, task_id: str = "", **kwargs: Any) -> None:
    if getattr(sender, "name", "") == VERIFY_TASK:
        _started[task_id] = time.monotonic()


def _verification_finished(
    sender: Any = None,
    task_id: str = "",
    args: Any = (),
    retval: Any = None,
    state: str | None = None,
    **kwargs: Any,
) -> None:
    started = _started.pop(task_id, None)
    if started is None:
        return
    # "skipped (signed)" counts as "skipped"; a retry or a failure has no return value.
    outcome = retval.split(" ")[0] if isinstance(retval, str) else (state or "error").lower()
    VERIFICATION_SECONDS.labels(outcome).observe(time.monotonic() - started)
    binary_id: int = args[0] if args else (kwargs.get("kwargs") or {})["binary_id"]
    hashed = Binary.objects.filter(pk=binary_id).values_list("bytes_hashed", flat=True).first()
    VERIFICATION_BYTES.labels(outcome).inc(hashed or 0)


COLLECTOR = BinariesCollector()


def connect() -> None:
    health.SCRAPED.register(COLLECTOR)  # the same object again is a no-op
    task_prerun.connect(_verification_started, dispatch_uid="binaries.metrics.started")
    task_postrun.connect(_verification_finished, dispatch_uid="binaries.metrics.finished")
