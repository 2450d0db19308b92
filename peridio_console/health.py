"""Probes for a load balancer and Prometheus: /healthz (the process answers), /readyz (the
database, broker, cache and object store answer, each timed; 503 naming what is down) and
/metrics (Prometheus text, only with `Authorization: Bearer <METRICS_TOKEN>`).

ProbeMiddleware answers them ahead of every other middleware: a load balancer probes a machine
by its address over plain HTTP, which ALLOWED_HOSTS and the HTTPS redirect would refuse. It
also counts every other response by status, and the bytes of part uploads.

Counters live in each process; under gunicorn's workers (and Celery's) they are added up through
prometheus_client's multiprocess files in PROMETHEUS_MULTIPROC_DIR (settings set it, under
VAR_DIR, when METRICS_TOKEN is set). Gauges about the data are read from the database at scrape
time by the collectors registered in SCRAPED (binaries/metrics.py adds the domain's).
"""

import contextlib
import functools
import hmac
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.db import connection
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

log = logging.getLogger(__name__)

# Seconds a dependency gets to connect, and again to answer, before /readyz calls it down.
TIMEOUT = 2

HTTP_REQUESTS = Counter(
    "peridio_http_requests", "HTTP responses, by status code (probes not counted).", ["status"]
)
LOGIN_FAILURES = Counter(
    "peridio_login_failures", "Failed log-ins (unknown user or wrong password)."
)
UPLOAD_BYTES = Counter(
    "peridio_upload_bytes",
    "Bytes of binary parts received through /transfer/parts/ (filesystem backend; on S3 the "
    "parts go straight to the bucket).",
)
# Collectors that read the database at scrape time, the same answer on every machine.
SCRAPED = CollectorRegistry()


@receiver(user_login_failed)
def _count_failed_login(sender: Any, **kwargs: Any) -> None:
    LOGIN_FAILURES.inc()


# --- /readyz ------------------------------------------------------------------------------


def _writable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".readyz-"):
        pass


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
    if settings.CELERY_BROKER_URL.startswith("filesystem://") and folder:
        _writable(Path(folder))
        return
    from peridio_console.celery import app

    with app.connection_for_write(connect_timeout=TIMEOUT) as conn:
        conn.ensure_connection(max_retries=0)  # one attempt, no back-off


def _cache() -> None:
    value = secrets.token_hex(8)
    cache.set("readyz", value, 30)
    if cache.get("readyz") != value:
        raise RuntimeError("the cache did not keep a value")


@functools.cache
def _s3_client(
    endpoint: str | None, region: str | None, key: str | None, secret: str | None
) -> Any:
    """A client of its own, with short timeouts and no retries (the storage's would retry)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(
            connect_timeout=TIMEOUT, read_timeout=TIMEOUT, retries={"total_max_attempts": 1}
        ),
    )


def _object_store() -> None:
    if settings.STORAGE_BACKEND != "s3":
        _writable(Path(settings.BINARIES_ROOT))
        return
    binaries: Any = settings.STORAGES["binaries"]
    options = binaries["OPTIONS"]
    client = _s3_client(
        options.get("endpoint_url"),
        options.get("region_name"),
        options.get("access_key"),
        options.get("secret_key"),
    )
    client.head_bucket(Bucket=options["bucket_name"])


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "broker": _broker,
    "cache": _cache,
    "object store": _object_store,
}


def readiness() -> dict[str, dict[str, Any]]:
    """Each dependency: up or not, how long it took to answer, and (when down) the error's kind;
    the error itself goes to the log, not to whoever asks."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:
            log.warning("Readiness: the %s is down: %s", name, exc)
            result: dict[str, Any] = {"ok": False, "error": type(exc).__name__}
        else:
            result = {"ok": True}
        result["seconds"] = round(time.monotonic() - started, 4)
        results[name] = result
    return results


# --- The three probes ---------------------------------------------------------------------


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    checks = readiness()
    down = [name for name, result in checks.items() if not result["ok"]]
    if not down:
        return JsonResponse({"status": "ready", "checks": checks})
    verb = "is" if len(down) == 1 else "are"
    return JsonResponse(
        {
            "status": "unavailable",
            "message": f"Not ready: the {' and the '.join(down)} {verb} down.",
            "down": down,
            "checks": checks,
        },
        status=503,
    )


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)  # every worker's files, added up
    else:
        processes = REGISTRY
    return generate_latest(processes) + generate_latest(SCRAPED)


def metrics(request: HttpRequest) -> HttpResponse:
    """404 while METRICS_TOKEN is unset (there is no such page: nothing to authenticate against,
    and a scanner learns nothing); 401 with the Bearer challenge for a missing or wrong token,
    so a misconfigured Prometheus says what is wrong."""
    token = settings.METRICS_TOKEN
    if not token:
        return HttpResponse("Not found.", status=404, content_type="text/plain; charset=utf-8")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = HttpResponse(
            "/metrics needs the header Authorization: Bearer <METRICS_TOKEN>.",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics,
}


class ProbeMiddleware:
    """First in MIDDLEWARE: answers the probes, counts everything else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None:
            if request.method not in ("GET", "HEAD"):
                response = HttpResponse(status=405, content_type="text/plain; charset=utf-8")
                response["Allow"] = "GET, HEAD"
            else:
                response = probe(request)
            response["Cache-Control"] = "no-store"
            return response
        response = self.get_response(request)
        self.count(request, response)
        return response

    @staticmethod
    def count(request: HttpRequest, response: HttpResponse) -> None:
        HTTP_REQUESTS.labels(str(response.status_code)).inc()
        if (
            request.method == "PUT"
            and request.path_info.startswith("/transfer/parts/")
            and 200 <= response.status_code < 300
        ):
            with contextlib.suppress(ValueError):  # a malformed length counts nothing
                UPLOAD_BYTES.inc(max(0, int(request.META.get("CONTENT_LENGTH") or 0)))
