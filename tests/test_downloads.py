"""Download URLs: only for signed binaries, time-limited, resumable with HTTP Range on both
backends (and with `curl -C -` and `wget -c` against a live server), audited and counted."""

import base64
import gc
import hashlib
import json
import subprocess
import time
import warnings
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core import signing
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import RequestFactory
from django.utils import timezone

from binaries import storage
from binaries.api import transfers
from binaries.models import Binary
from binaries.storage import tokens
from peridio_console.accounts.models import AuditEvent
from tests.api_helpers import error_of
from tests.signing_helpers import require_tool, signable_binary, signed_binary
from tests.storage_fixtures import s3_settings
from tests.upload_helpers import MiB, random_bytes, sha256

pytestmark = pytest.mark.django_db


@pytest.fixture
def filesystem():
    return storage.get()


@pytest.fixture
def data():
    return random_bytes(5 * MiB + 3 * MiB // 2 + 123)  # two parts


def issue(api, binary: Binary, **params) -> str:
    response = api.get(f"/binaries/{binary.prn}/download_url", **params)
    assert response.status_code == 200, response.content
    return response.json()["download_url"]


def fetch(client, url: str, headers: dict | None = None, method: str = "GET"):
    """(status, lowercased headers, body) of a download URL: this server's through the test
    client, the object store's over HTTP."""
    if url.startswith("http://testserver/"):
        response = client.generic(method, urlsplit(url).path, headers=headers or {})
        body = b"".join(response.streaming_content) if response.streaming else response.content
        found = {k.lower(): v for k, v in response.headers.items()}
        return response.status_code, found, body
    with httpx.Client(timeout=60) as http:
        response = http.request(method, url, headers=headers or {})
    found = {k.lower(): v for k, v in response.headers.items()}
    return response.status_code, found, response.content


def error_body(body: bytes) -> dict:
    payload = json.loads(body)
    assert set(payload) == {"error"}
    return payload["error"]


# --- Resuming -------------------------------------------------------------------------------


def test_it_resumes_a_download_with_range(client, engineer_api, backend, version, actor, data):
    binary = signed_binary(client, engineer_api, version, actor, data)
    url = issue(engineer_api, binary)
    size, half = len(data), len(data) // 2

    status, headers, first = fetch(client, url, {"Range": f"bytes=0-{half - 1}"})

    assert status == 206
    assert headers["content-range"] == f"bytes 0-{half - 1}/{size}"
    assert first == data[:half]

    status, headers, rest = fetch(client, url, {"Range": f"bytes={half}-"})

    assert status == 206
    assert headers["content-range"] == f"bytes {half}-{size - 1}/{size}"
    assert int(headers["content-length"]) == size - half
    assert hashlib.sha256(first + rest).hexdigest() == binary.hash == binary.verified_hash

    status, headers, whole = fetch(client, url)
    assert status == 200
    assert int(headers["content-length"]) == size
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-disposition"] == storage.content_disposition(binary)
    assert sha256(whole) == binary.hash


def test_it_serves_ranges_of_every_shape(client, engineer_api, filesystem, version, actor):
    content = random_bytes(10_000)
    binary = signed_binary(client, engineer_api, version, actor, content)
    url = issue(engineer_api, binary)
    cases = {
        "bytes=0-0": (206, content[:1], "bytes 0-0/10000"),
        "bytes=9999-": (206, content[-1:], "bytes 9999-9999/10000"),
        "bytes=-100": (206, content[-100:], "bytes 9900-9999/10000"),
        "bytes=-20000": (206, content, "bytes 0-9999/10000"),
        "bytes=5000-99999": (206, content[5000:], "bytes 5000-9999/10000"),
        "bytes=0-1,5-6": (200, content, None),  # several ranges: the whole file
        "bytes=abc": (200, content, None),  # malformed: ignored
        "items=0-5": (200, content, None),
    }
    for header, (status, body, content_range) in cases.items():
        got_status, headers, got = fetch(client, url, {"Range": header})
        assert (got_status, got) == (status, body), header
        assert headers.get("content-range") == content_range, header
        assert int(headers["content-length"]) == len(body), header


def test_it_answers_416_for_a_range_it_cannot_satisfy(
    client, engineer_api, filesystem, version, actor
):
    content = random_bytes(4096)
    binary = signed_binary(client, engineer_api, version, actor, content)
    url = issue(engineer_api, binary)

    for header in ("bytes=4096-", "bytes=5000-6000", "bytes=-0", "bytes=10-5"):
        status, headers, body = fetch(client, url, {"Range": header})
        assert status == 416, header
        assert headers["content-range"] == "bytes */4096"
        error = error_body(body)
        assert error["code"] == "range_not_satisfiable"
        assert "4096 bytes" in error["message"]


def test_it_reads_range_numbers_of_any_length_as_the_numbers_they_are(
    client, engineer_api, filesystem, version, actor
):
    """A 5,000-digit number is more than int() will read; it is still only a number larger
    than any content, so it means what RFC 9110 says such a number means."""
    content = random_bytes(1000)
    binary = signed_binary(client, engineer_api, version, actor, content)
    url = issue(engineer_api, binary)
    huge, zeros = "9" * 5000, "0" * 5000
    cases = {
        f"bytes={huge}-": (416, None, "bytes */1000"),  # starts past the end
        f"bytes={huge}-{huge}": (416, None, "bytes */1000"),
        f"bytes=0-{huge}": (206, content, "bytes 0-999/1000"),  # an end past the end: to the end
        f"bytes=-{huge}": (206, content, "bytes 0-999/1000"),  # a suffix longer than the content
        f"bytes={zeros}5-{zeros}9": (206, content[5:10], "bytes 5-9/1000"),  # leading zeros
        "bytes=\u0665-": (200, content, None),  # not ASCII digits: malformed, ignored
    }
    for header, (status, body, content_range) in cases.items():
        got_status, headers, got = fetch(client, url, {"Range": header})
        assert got_status == status, header[:40]
        assert headers.get("content-range") == content_range, header[:40]
        if body is None:
            assert error_body(got)["code"] == "range_not_satisfiable"
        else:
            assert got == body, header[:40]


def test_it_resends_the_whole_file_when_if_range_does_not_match(
    client, engineer_api, filesystem, version, actor
):
    content = random_bytes(8192)
    binary = signed_binary(client, engineer_api, version, actor, content)
    url = issue(engineer_api, binary)
    _, headers, _ = fetch(client, url, method="HEAD")
    etag = headers["etag"]
    assert etag == f'"{binary.verified_hash}"'

    status, _, body = fetch(client, url, {"Range": "bytes=100-", "If-Range": etag})
    assert (status, body) == (206, content[100:])

    for stale in ('"' + "0" * 64 + '"', "Wed, 21 Oct 2015 07:28:00 GMT", 'W/"x"'):
        status, headers, body = fetch(client, url, {"Range": "bytes=100-", "If-Range": stale})
        assert (status, body) == (200, content), stale
        assert "content-range" not in headers


def test_it_answers_head_without_a_body(client, engineer_api, filesystem, version, actor):
    content = random_bytes(3000)
    binary = signed_binary(client, engineer_api, version, actor, content)
    url = issue(engineer_api, binary)

    status, headers, body = fetch(client, url, method="HEAD")

    assert status == 200
    assert body == b""
    assert headers["content-length"] == "3000"
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"] == f'"{binary.hash}"'
    assert headers["content-type"] == "application/octet-stream"


def test_it_closes_the_file_when_the_client_goes_away_before_the_body(
    client, engineer_api, filesystem, version, actor
):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(3000))
    url = issue(engineer_api, binary)

    for headers in ({}, {"Range": "bytes=10-"}):
        response = client.get(urlsplit(url).path, headers=headers)
        assert response.status_code in (200, 206)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            # What the WSGI server does when the client hangs up (minus closing the database
            # connection, as the test client does too).
            request_finished.disconnect(close_old_connections)
            try:
                response.close()
            finally:
                request_finished.connect(close_old_connections)
            del response
            gc.collect()
    # (an unclosed file would surface as a ResourceWarning, an error in this suite)


def test_it_takes_no_other_methods(client, engineer_api, filesystem, version, actor):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(100))
    url = issue(engineer_api, binary)

    for method in ("PUT", "POST", "DELETE"):
        assert client.generic(method, urlsplit(url).path).status_code == 405


# --- Refusals ---------------------------------------------------------------------------


def _tampered(url: str) -> list[str]:
    """The URL with a later expiry under the old signature, with a byte of the signature
    changed, and with another binary's id under the old signature."""
    prefix, token = url.rsplit("/", 1)
    payload_text, signature = token.rsplit(":", 1)
    payload = json.loads(signing.b64_decode(payload_text.encode()))
    later = signing.b64_encode(json.dumps({**payload, "e": payload["e"] + 86400}).encode())
    other = signing.b64_encode(json.dumps({**payload, "b": "0" * 32}).encode())
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    return [
        f"{prefix}/{later.decode()}:{signature}",
        f"{prefix}/{payload_text}:{flipped}",
        f"{prefix}/{other.decode()}:{signature}",
        f"{prefix}/{payload_text}",
    ]


def test_it_refuses_a_tampered_url(client, engineer_api, filesystem, version, actor):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(1000))
    url = issue(engineer_api, binary)

    for bad in _tampered(url):
        status, _, body = fetch(client, bad)
        assert status == 403, bad
        error = error_body(body)
        assert error["code"] == "url_tampered"
        assert "altered" in error["message"]
    assert fetch(client, url)[0] == 200


class _Later:
    """time as the transfer view sees it, some seconds from now."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def time(self) -> float:
        return time.time() + self.seconds


def test_it_refuses_an_expired_url(client, engineer_api, filesystem, version, actor, monkeypatch):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(1000))
    url = issue(engineer_api, binary, expires_in=60)
    assert fetch(client, url)[0] == 200

    monkeypatch.setattr(transfers, "time", _Later(61))
    status, _, body = fetch(client, url, {"Range": "bytes=0-"})

    assert status == 403
    error = error_body(body)
    assert error["code"] == "url_expired"
    assert "expired" in error["message"]


def test_it_refuses_a_tampered_url_before_looking_at_its_expiry(
    client, engineer_api, filesystem, version, actor, monkeypatch
):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(1000))
    url = issue(engineer_api, binary, expires_in=60)
    monkeypatch.setattr(transfers, "time", _Later(3600))

    status, _, body = fetch(client, _tampered(url)[0])

    assert status == 403
    assert error_body(body)["code"] == "url_tampered"


def test_it_issues_urls_for_signed_binaries_only(client, engineer_api, filesystem, version, actor):
    content = random_bytes(2000)
    signable = signable_binary(client, version, actor, content)
    from tests.upload_helpers import new_binary

    uploadable = new_binary(version, actor, content, target="x86_64-linux-gnu")
    before = AuditEvent.objects.count()

    for binary, state in ((signable, "signable"), (uploadable, "uploadable")):
        response = engineer_api.get(f"/binaries/{binary.prn}/download_url")
        assert response.status_code == 409
        error = error_of(response)
        assert error["code"] == "not_signed"
        assert error["message"] == (
            f"The binary is {state}; only signed binaries can be downloaded."
        )
    assert AuditEvent.objects.count() == before


def test_it_refuses_a_binary_whose_content_failed_its_integrity_check(
    client, engineer_api, filesystem, version, actor
):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(2000))
    url = issue(engineer_api, binary)
    Binary.objects.filter(pk=binary.pk).update(
        integrity_failed_at=timezone.now(), last_error="The stored content no longer matches."
    )

    response = engineer_api.get(f"/binaries/{binary.prn}/download_url")
    status, _, body = fetch(client, url)

    assert response.status_code == 409
    assert error_of(response)["code"] == "integrity_failed"
    assert "no longer matches" in error_of(response)["message"]
    assert status == 409
    assert error_body(body)["code"] == "integrity_failed"


def test_it_stops_a_url_when_the_key_is_revoked(
    client, engineer_api, admin_api, filesystem, version, actor
):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(2000))
    url = issue(engineer_api, binary)
    key_prn = engineer_api.get(f"/binaries/{binary.prn}").json()["binary"]["signatures"][0][
        "signing_key_prn"
    ]

    admin_api.delete(f"/signing_keys/{key_prn}")
    status, _, body = fetch(client, url)

    assert status == 409
    assert error_body(body)["code"] == "signature_revoked"


def test_it_bounds_expires_in(client, engineer_api, filesystem, version, actor, settings):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(100))
    maximum = settings.DOWNLOAD_URL_MAX_TTL_SECONDS
    before = AuditEvent.objects.count()

    for value in (maximum + 1, 0, -5):
        response = engineer_api.get(f"/binaries/{binary.prn}/download_url", expires_in=value)
        assert response.status_code == 400, value
        error = error_of(response)
        assert error["field"] == "expires_in"
        assert f"from 1 to {maximum}" in error["message"]
    assert AuditEvent.objects.count() == before

    response = engineer_api.get(f"/binaries/{binary.prn}/download_url", expires_in=maximum)
    assert response.status_code == 200


def test_it_dates_the_url(client, engineer_api, filesystem, version, actor, settings):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(100))
    start = timezone.now()

    default = engineer_api.get(f"/binaries/{binary.prn}/download_url").json()
    short = engineer_api.get(f"/binaries/{binary.prn}/download_url", expires_in=120).json()

    for body, seconds in ((default, settings.DOWNLOAD_URL_TTL_SECONDS), (short, 120)):
        expires_at = timezone.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        assert start + timedelta(seconds=seconds) <= expires_at
        assert expires_at <= timezone.now() + timedelta(seconds=seconds)


def test_it_hides_binaries_of_another_organization(
    client, engineer_api, outsider_api, filesystem, version, actor
):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(100))

    assert outsider_api.get(f"/binaries/{binary.prn}/download_url").status_code == 404
    assert outsider_api.get(f"/binaries/{binary.prn}/download_counts").status_code == 404


def test_it_lets_viewers_download(client, engineer_api, viewer_api, filesystem, version, actor):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(100))

    assert viewer_api.get(f"/binaries/{binary.prn}/download_url").status_code == 200


# --- S3 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_it_presigns_an_s3_get_with_the_download_name(
    client, engineer_api, backend, version, actor
):
    content = random_bytes(100_000)
    binary = signed_binary(client, engineer_api, version, actor, content)

    url = issue(engineer_api, binary, expires_in=300)

    query = parse_qs(urlsplit(url).query)
    assert query["response-content-disposition"] == [storage.content_disposition(binary)]
    assert int(query["X-Amz-Expires"][0]) in (299, 300)  # the seconds left when it was signed
    assert "X-Amz-Signature" in query
    with httpx.Client(timeout=60) as http:
        response = http.get(url)  # no API key, no other header: the URL is the credential
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-disposition"] == storage.content_disposition(binary)
    # (moto does not check signatures, so a tampered S3 URL is not tested here.)

    with httpx.Client(timeout=60) as http:
        resumed = http.get(url, headers={"Range": "bytes=50000-"})
    assert resumed.status_code == 206
    assert resumed.headers["content-range"] == "bytes 50000-99999/100000"
    assert resumed.content == content[50000:]


# --- Audit and counts ------------------------------------------------------------------


def test_it_audits_each_url_issued(client, engineer_api, filesystem, version, actor):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(100))

    issue(engineer_api, binary, expires_in=90)

    event = AuditEvent.objects.get(action="download_url.issued")
    assert event.object_prn == binary.prn
    assert event.organization == binary.organization
    assert event.actor_api_key is not None
    assert event.actor_label.startswith(engineer_api.membership.user.username)
    assert event.ip == "127.0.0.1"
    assert event.details["target"] == binary.target
    assert "expires_at" in event.details


def test_it_counts_urls_issued_per_day_where_the_bucket_serves_the_bytes(
    client, engineer_api, viewer_api, filesystem, version, actor, s3_server, settings
):
    first = signed_binary(client, engineer_api, version, actor, random_bytes(100), target="a-b-c")
    second = signed_binary(client, engineer_api, version, actor, random_bytes(100), target="d-e-f")
    for _ in range(2):
        issue(engineer_api, first)
    issue(engineer_api, second)
    ancient = AuditEvent.objects.filter(object_prn=second.prn).first()
    AuditEvent.objects.create(
        organization=ancient.organization,
        actor_label="x",
        action="download_url.issued",
        object_prn=second.prn,
        at=timezone.now() - timedelta(days=40),
    )
    AuditEvent.objects.create(  # events are never changed: one written as two days old
        organization=ancient.organization,
        actor_label="x",
        action="download_url.issued",
        object_prn=first.prn,
        at=timezone.now() - timedelta(days=2),
    )
    today = timezone.now().date()
    for name, value in s3_settings(s3_server["endpoint"]).items():
        setattr(settings, name, value)  # presigned URLs: the bucket serves the bytes

    body = viewer_api.get(f"/binaries/{first.prn}/download_counts").json()
    counts = body["download_counts"]

    assert body["counts"] == "urls_issued"
    assert body["label"] == "Download URLs issued"
    assert len(counts) == 30
    assert counts[-1] == {"date": today.isoformat(), "count": 2, "bytes": None}
    two_days_ago = (today - timedelta(days=2)).isoformat()
    assert counts[-3] == {"date": two_days_ago, "count": 1, "bytes": None}
    assert sum(c["count"] for c in counts) == 3
    assert [c["date"] for c in counts] == sorted(c["date"] for c in counts)

    week = viewer_api.get("/download_counts", days=7).json()["download_counts"]
    assert len(week) == 7
    assert week[-1]["count"] == 3 and sum(c["count"] for c in week) == 4
    quarter = viewer_api.get("/download_counts", days=90).json()["download_counts"]
    assert sum(c["count"] for c in quarter) == 5

    refused = viewer_api.get("/download_counts", days=5)
    assert refused.status_code == 400
    assert error_of(refused)["field"] == "days"


def test_it_counts_completed_downloads_and_bytes_where_this_server_serves_them(
    client, engineer_api, viewer_api, filesystem, version, actor
):
    data = random_bytes(300_000)
    binary = signed_binary(client, engineer_api, version, actor, data)
    url = issue(engineer_api, binary)
    issue(engineer_api, binary)  # a URL never used counts for nothing here
    today = timezone.now().date().isoformat()

    whole = fetch(client, url)
    head = fetch(client, url, method="HEAD")
    first_half = fetch(client, url, {"Range": "bytes=0-99999"})
    rest = fetch(client, url, {"Range": "bytes=100000-"})

    assert [whole[0], head[0], first_half[0], rest[0]] == [200, 200, 206, 206]
    assert first_half[2] + rest[2] == data
    body = viewer_api.get(f"/binaries/{binary.prn}/download_counts", days=7).json()
    assert body["counts"] == "completed_downloads"
    assert body["label"] == "Completed downloads"
    # The whole download, and the resumed one completed by its last range; HEAD sends nothing.
    assert body["download_counts"][-1] == {"date": today, "count": 2, "bytes": 600_000}
    assert sum(day["count"] for day in body["download_counts"]) == 2
    organization = viewer_api.get("/download_counts", days=7).json()
    assert organization["download_counts"][-1] == {"date": today, "count": 2, "bytes": 600_000}


def test_it_counts_the_bytes_of_a_download_the_client_abandons(
    client, engineer_api, viewer_api, filesystem, version, actor, settings
):
    size = 3 * storage.READ_BUFFER
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(size))
    url = issue(engineer_api, binary)
    token = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    # What a WSGI server does: iterate the body, and close the response when the client goes
    # away (here after two buffers).
    response = transfers.binary_download(RequestFactory().get(urlsplit(url).path), token)
    chunks = iter(response)
    sent = len(next(chunks)) + len(next(chunks))
    assert sent < size
    request_finished.disconnect(close_old_connections)  # the test's database stays open
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)

    [day] = viewer_api.get(f"/binaries/{binary.prn}/download_counts", days=7).json()[
        "download_counts"
    ][-1:]
    assert day["count"] == 0
    assert 0 < day["bytes"] <= sent


# --- Real clients resuming against a live server ------------------------------------------------


def _issued_over_http(live_server, secret: str, binary: Binary) -> str:
    with httpx.Client(timeout=60) as http:
        response = http.get(
            f"{live_server.url}/v1/binaries/{binary.prn}/download_url",
            headers={"Authorization": f"Bearer {secret}"},
        )
    assert response.status_code == 200, response.text
    url = response.json()["download_url"]
    assert url.startswith(live_server.url + "/transfer/binaries/")
    return url


@pytest.fixture
def half_downloaded(live_server, client, engineer_api, filesystem, version, actor, tmp_path):
    """A signed binary, a URL of the live server for it, and a file holding its first half
    (what an interrupted download leaves behind)."""
    content = random_bytes(3 * MiB + 4321)
    binary = signed_binary(client, engineer_api, version, actor, content)
    url = _issued_over_http(live_server, engineer_api.secret, binary)
    target = tmp_path / "download" / "firmware.bin"
    target.parent.mkdir()
    target.write_bytes(content[: len(content) // 2])
    return binary, url, target


@pytest.mark.django_db(transaction=True)
def test_it_lets_curl_resume_an_interrupted_download(half_downloaded):
    require_tool("curl")
    binary, url, target = half_downloaded

    completed = subprocess.run(
        [
            *("curl", "--silent", "--show-error", "--fail", "-C", "-", "-o", target.name),
            *("--write-out", "%{http_code} %{size_download}", url),
        ],
        cwd=target.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    status, downloaded = completed.stdout.split()
    assert status == "206"
    assert int(downloaded) == binary.size - binary.size // 2  # only the missing half
    assert sha256(target.read_bytes()) == binary.hash


@pytest.mark.django_db(transaction=True)
def test_it_lets_wget_resume_an_interrupted_download(half_downloaded):
    require_tool("wget")
    binary, url, target = half_downloaded

    completed = subprocess.run(
        ["wget", "--server-response", "--no-verbose", "-c", "-O", target.name, url],
        cwd=target.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert "206 Partial Content" in completed.stderr
    half = binary.size // 2
    assert f"Content-Range: bytes {half}-{binary.size - 1}/{binary.size}" in completed.stderr
    assert sha256(target.read_bytes()) == binary.hash


@pytest.mark.django_db(transaction=True)
def test_it_tells_curl_why_an_expired_url_is_refused(half_downloaded, monkeypatch):
    require_tool("curl")
    _, url, target = half_downloaded
    monkeypatch.setattr(transfers, "time", _Later(10 * 86400))

    completed = subprocess.run(
        ["curl", "--silent", "-C", "-", "-o", "-", "--write-out", "\n%{http_code}", url],
        cwd=target.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    body, _, status = completed.stdout.rpartition("\n")
    assert status == "403"
    assert json.loads(body)["error"]["code"] == "url_expired"


def test_it_puts_no_secret_in_the_url(client, engineer_api, filesystem, version, actor):
    """The URL is a bearer credential for one object: it names the binary, its digest and an
    expiry, and nothing else (no API key, no user)."""
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(100))
    token = issue(engineer_api, binary).rsplit("/", 1)[1]

    payload = tokens.read_download_token(token)

    assert set(payload) == {"b", "h", "e"}
    assert payload["b"] == binary.uuid.hex
    assert payload["h"] == binary.verified_hash
    assert engineer_api.secret not in token
    assert engineer_api.secret.encode() not in base64.urlsafe_b64decode(token.split(":")[0] + "==")
