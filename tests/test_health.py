"""/healthz, /readyz and /metrics (peridio_console/health.py, binaries/metrics.py)."""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from binaries.models import Binary
from peridio_console import health
from tests.factories import binary_in_state
from tests.server_helpers import Gunicorn, free_port, server_env
from tests.upload_helpers import declare, put_bytes, random_bytes, sha256

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-for-the-tests"
CHECKS = ["database", "broker", "cache", "object store"]


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- /healthz -----------------------------------------------------------------------------


def test_it_answers_healthz_by_address_over_plain_http(client, settings):
    # A load balancer probes each machine by its address, over HTTP, before TLS ends.
    settings.ALLOWED_HOSTS = ["console.example.com"]
    settings.SECURE_SSL_REDIRECT = True

    response = client.get("/healthz", HTTP_HOST="10.0.0.5:8000")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert client.get(reverse("login"), HTTP_HOST="10.0.0.5:8000").status_code == 400


def test_it_refuses_to_post_to_a_probe(client):
    response = client.post("/healthz")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


# --- /readyz ------------------------------------------------------------------------------


def test_it_answers_readyz_with_each_dependency_and_its_latency(client, db, backend):
    response = client.get("/readyz", HTTP_HOST="10.0.0.5")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert list(body["checks"]) == CHECKS
    for check in body["checks"].values():
        assert check["ok"] is True
        # Connecting and answering get TIMEOUT each (a busy machine took 2.09 s once).
        assert 0 <= check["seconds"] < 2 * health.TIMEOUT


def test_it_names_a_dependency_that_is_down(client, db, monkeypatch):
    def refuse() -> None:
        raise ConnectionRefusedError("connection refused by 10.0.0.9:6379")

    monkeypatch.setitem(health.CHECKS, "broker", refuse)

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["message"] == "Not ready: the broker is down."
    assert body["down"] == ["broker"]
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"] == "ConnectionRefusedError"
    assert "10.0.0.9" not in response.content.decode()  # addresses go to the log only
    assert body["checks"]["database"]["ok"] is True


def _closed_port() -> int:
    return free_port()  # bound for a moment, then closed: nothing listens there


def _ready_in_subprocess(tmp_path: Path, **env: str) -> tuple[int, dict, float]:
    sqlite = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    environment = server_env(tmp_path / "var", sqlite, LOG_LEVEL="ERROR", **env)
    code = (
        "import django, json, time; django.setup()\n"
        "from django.test import Client\n"
        "started = time.monotonic(); r = Client().get('/readyz')\n"
        "print(json.dumps([r.status_code, r.json(), time.monotonic() - started]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status, body, seconds = json.loads(done.stdout.strip().splitlines()[-1])
    return status, body, seconds


def _unwritable(tmp_path: Path, below_var: str) -> dict[str, str]:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / below_var).write_text("a file where a folder should be")
    return {}


DOWN = {
    "database": lambda tmp: {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{_closed_port()}/x"},
    "broker-redis": lambda tmp: {"CELERY_BROKER_URL": f"redis://127.0.0.1:{_closed_port()}/0"},
    "broker-amqp": lambda tmp: {
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"
    },
    "broker-filesystem": lambda tmp: _unwritable(tmp, "celery"),
    "cache": lambda tmp: {"CACHE_URL": f"redis://127.0.0.1:{_closed_port()}/0"},
    "object-store-s3": lambda tmp: {
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": "peridio",
        "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
    },
    "object-store-filesystem": lambda tmp: _unwritable(tmp, "binaries"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(DOWN))
def test_it_answers_503_naming_the_dependency_that_is_down(tmp_path, case):
    name = case.split("-")[0].replace("object", "object store")

    status, body, seconds = _ready_in_subprocess(tmp_path, **DOWN[case](tmp_path))

    assert status == 503, body
    assert body["status"] == "unavailable"
    assert body["down"] == [name]
    assert body["message"] == f"Not ready: the {name} is down."
    assert {check for check, result in body["checks"].items() if result["ok"]} == (
        set(CHECKS) - {name}
    )
    assert seconds < 3 * health.TIMEOUT


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@pytest.mark.slow
def test_it_is_ready_on_postgresql_redis_and_rabbitmq(tmp_path):
    missing = [port for port in (5432, 6379, 5672) if not _listening(port)]
    if missing and os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        pytest.skip(f"needs PostgreSQL, Redis and RabbitMQ on 127.0.0.1 (closed: {missing})")
    for broker in ("redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672//"):
        status, body, _ = _ready_in_subprocess(
            tmp_path,
            DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
            CELERY_BROKER_URL=broker,
            CACHE_URL="redis://127.0.0.1:6379/0",
        )
        assert status == 200, body
        assert all(result["ok"] for result in body["checks"].values())


# --- /metrics: not public -----------------------------------------------------------------


def test_it_has_no_metrics_page_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")

    assert response.status_code == 404


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token-of-some-length", TOKEN, f"Basic {TOKEN}"]
)
def test_it_needs_the_metrics_token(client, metrics_on, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = client.get("/metrics", **extra)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"# TYPE" not in response.content


# --- /metrics: what it counts -------------------------------------------------------------


def test_it_reports_binaries_by_state_and_the_verification_queue(client, metrics_on, version):
    for state in ("uploadable", "hashable", "hashable", "hashing", "signed"):
        binary_in_state(state, artifact_version=version)

    samples = scrape(client)

    assert value(samples, "peridio_binaries", state="uploadable") == 1
    assert value(samples, "peridio_binaries", state="hashable") == 2
    assert value(samples, "peridio_binaries", state="signable") == 0
    assert ("peridio_binaries", (("state", "destroyed"),)) in samples
    assert value(samples, "peridio_verifications_queued") == 2
    assert value(samples, "peridio_verifications_running") == 1


def test_it_counts_responses_by_status_but_not_probes(client, db, metrics_on):
    before = scrape(client)

    client.get("/v1/nothing-here")
    client.get("/v1/nothing-here")
    client.get("/healthz")
    after = scrape(client)

    counted = "peridio_http_requests_total"
    assert value(after, counted, status="404") - value(before, counted, status="404") == 2
    assert value(after, counted, status="200") == value(before, counted, status="200")


def test_it_counts_failed_log_ins(client, metrics_on, engineer_membership):
    before = value(scrape(client), "peridio_login_failures_total")

    client.post(reverse("login"), {"username": "nobody", "password": "wrong"})
    client.post(
        reverse("login"), {"username": engineer_membership.user.username, "password": "wrong"}
    )

    assert value(scrape(client), "peridio_login_failures_total") - before == 2


def test_it_counts_upload_bytes_and_verifications(
    client, metrics_on, engineer_api, version, backend, django_capture_on_commit_callbacks
):
    data = random_bytes(3000)
    created = engineer_api.post(
        "/binaries",
        {
            "artifact_version_prn": version.prn,
            "target": "arm-linux-gnueabihf",
            "hash": sha256(data),
            "size": len(data),
        },
    )
    binary = Binary.objects.get(uuid=created.json()["binary"]["prn"].rsplit(":", 1)[1])
    before = scrape(client)

    assert put_bytes(client, declare(binary, 1, data), data) == 200
    with django_capture_on_commit_callbacks(execute=True):
        done = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert done.status_code == 200, done.content
    after = scrape(client)

    binary.refresh_from_db()
    assert binary.state == "signable"
    uploaded = "peridio_upload_bytes_total"
    # On S3 the bytes go straight to the bucket, past the web tier.
    expected = 0 if backend.__class__.__name__ == "S3Storage" else len(data)
    assert value(after, uploaded) - value(before, uploaded) == expected
    runs = "peridio_verification_seconds_count"
    assert value(after, runs, outcome="signable") - value(before, runs, outcome="signable") == 1
    hashed = "peridio_verification_bytes_total"
    assert value(after, hashed, outcome="signable") - value(
        before, hashed, outcome="signable"
    ) == len(data)


# --- /metrics under gunicorn: every worker's counts, added up -----------------------------


@pytest.mark.slow
def test_it_adds_up_the_counts_of_every_gunicorn_worker(tmp_path):
    env = server_env(
        tmp_path / "var",
        f"sqlite:///{tmp_path / 'db.sqlite3'}",  # never migrated
        METRICS_TOKEN=TOKEN,
        # A worker is replaced after 4 requests: the 6 below are served by at least two
        # processes, one of them gone by the time /metrics is read. Preloaded, a replacement
        # is a fork, not another Django start-up.
        GUNICORN_CMD_ARGS="--max-requests 4 --preload",
    )
    server = Gunicorn(env, tmp_path / "gunicorn.log", workers=2, threads=1).start()
    try:
        for _ in range(6):
            assert httpx.get(f"{server.url}/v1/nothing-here", timeout=30).status_code == 404
        answer = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
    finally:
        server.stop()

    assert answer.status_code == 200, answer.text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    assert value(samples, "peridio_http_requests_total", status="404") == 6
    # The database was never migrated: the binaries' gauges are missing, the counters are not.
    assert not any(name == "peridio_binaries" for name, _ in samples)
