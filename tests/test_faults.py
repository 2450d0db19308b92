"""Faults: the object store, the broker and the database go away in the middle of the work.

- S3 (a private moto server behind a proxy that can be unplugged) stops during a part
  upload, during completion (mark hashable) and during hashing: the API answers 503 with a
  message, verification retries, and once the store is back the binary finishes or resets
  cleanly with no orphaned object or multipart upload in the bucket.
- Redis (a private redis-server on a free port, never the machine's) stops and restarts:
  verification queued while it was down, or lost with it, is queued again by the sweeper.
- The database connection drops in the middle of a request: 503 with a message, and nothing
  half-written (a console page and the upload endpoint; the API case is in test_hardening).
"""

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from django.db import OperationalError, connection

from binaries import moves, storage, tasks, uploads
from binaries.models import Binary, BinaryEvent, BinaryPart, PartState, State
from tests.server_helpers import FlakyProxy, PrivateRedis, free_port
from tests.test_hashing_worker import (  # noqa: F401  (the fixture and its helper)
    Workers,
    _forget_publishing_pools,
    state_of,
    workers,
)
from tests.upload_helpers import MiB, declare, new_binary, put_http, random_bytes, sha256, split

pytestmark = [pytest.mark.slow]

BUCKET = "h9-faults"


def recorded_moves(binary: Binary) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in BinaryEvent.objects.filter(binary=binary)]


# --- S3 behind an unpluggable proxy -----------------------------------------------------------


class FlakyS3:
    def __init__(self, moto_port: int):
        self.proxy = FlakyProxy(moto_port).start()
        self.direct = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{moto_port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        self.direct.create_bucket(Bucket=BUCKET)

    def settings(self) -> dict[str, Any]:
        options = {
            "bucket_name": BUCKET,
            "endpoint_url": self.proxy.endpoint,
            "region_name": "us-east-1",
            "access_key": "testing",
            "secret_key": "testing",
            "addressing_style": "path",
            "signature_version": "s3v4",
            "file_overwrite": True,
            "default_acl": None,
        }
        return {
            "STORAGE_BACKEND": "s3",
            "STORAGES": {
                "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
                "binaries": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
            },
        }

    def listing(self) -> list[str]:
        """What the bucket holds, objects and unfinished multipart uploads (read directly)."""
        keys = [o["Key"] for o in self.direct.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        ongoing = self.direct.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        return sorted(keys + [f"(multipart upload) {u['Key']}" for u in ongoing])

    def empty(self) -> None:
        for upload in self.direct.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
            self.direct.abort_multipart_upload(
                Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for item in self.direct.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            self.direct.delete_object(Bucket=BUCKET, Key=item["Key"])


@pytest.fixture(scope="module")
def moto_port() -> Iterator[int]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield port
    server.stop()


@pytest.fixture
def flaky_s3(moto_port, settings) -> Iterator[FlakyS3]:
    s3 = FlakyS3(moto_port)
    s3.empty()
    for name, value in s3.settings().items():
        setattr(settings, name, value)
    yield s3
    s3.proxy.stop()
    s3.empty()


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def assert_unavailable(response: Any, doing: str) -> None:
    """A 503 in the one error shape that says what failed and that nothing changed."""
    assert response.status_code == 503, response.content
    error = error_of(response)
    assert error["code"] == "storage_unavailable"
    assert error["message"].startswith(f"The object store could not {doing}"), error
    assert error["message"].endswith("Nothing was changed."), error
    assert response["Retry-After"] == "5"


def put_slowly(url: str, body: bytes, part_hash: str, outcome: dict) -> None:
    """PUT a part in 256 KiB pieces with pauses, so the store can go away in the middle."""
    import httpx

    from tests.upload_helpers import checksum_header

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            time.sleep(0.02)
            yield body[start : start + 256 * 1024]

    try:
        with httpx.Client(timeout=30) as http:
            headers = {**checksum_header(part_hash), "Content-Length": str(len(body))}
            outcome["status"] = http.put(url, content=pieces(), headers=headers).status_code
    except httpx.HTTPError as exc:
        outcome["error"] = f"{type(exc).__name__}: {exc}"


@pytest.mark.django_db(transaction=True)
def test_it_survives_the_store_stopping_during_a_part_upload(
    flaky_s3, engineer_api, version, actor
):
    data = random_bytes(6 * MiB)
    first, second = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    part_one = declare(binary, 1, first)
    part_two = declare(binary, 2, second)
    outcome: dict = {}
    sender = threading.Thread(
        target=put_slowly, args=(part_one.upload_url, first, part_one.part.hash, outcome)
    )
    sender.start()
    deadline = time.monotonic() + 30
    while flaky_s3.proxy.bytes_up < 1 * MiB:
        assert time.monotonic() < deadline and sender.is_alive(), outcome
        time.sleep(0.01)
    flaky_s3.proxy.cut()  # the store goes away with part 1 half sent
    sender.join(timeout=60)
    assert "error" in outcome, outcome  # the client sees its upload fail

    # While it is away, the API says so and changes nothing.
    assert_unavailable(engineer_api.get(f"/binaries/{binary.prn}/parts"), "list the uploaded parts")
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert_unavailable(response, "list the uploaded parts")
    assert state_of(binary) == State.UPLOADABLE
    assert recorded_moves(binary) == [("", "uploadable")]

    # Back again: the client resumes (part 1 again, then part 2) and the binary finishes.
    flaky_s3.proxy.restore()
    assert put_http(part_one.upload_url, first, part_one.part.hash).status_code == 200
    assert put_http(part_two.upload_url, second, part_two.part.hash).status_code == 200
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert response.status_code == 200, response.content
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert binary.verified_hash == sha256(data)
    assert flaky_s3.listing() == [storage.get().key(binary)]  # one object, no upload left over


@pytest.mark.django_db(transaction=True)
def test_it_survives_the_store_stopping_during_completion(
    flaky_s3, engineer_api, version, actor, monkeypatch
):
    data = random_bytes(5 * MiB + 300)
    binary = new_binary(version, actor, data)
    for index, chunk in enumerate(split(data, 5 * MiB), start=1):
        declared = declare(binary, index, chunk)
        assert put_http(declared.upload_url, chunk, declared.part.hash).status_code == 200

    call = storage.S3Storage._call

    def store_goes_away(self: Any, what: str, *args: Any, **kwargs: Any) -> Any:
        if what == "complete the upload":  # the parts were listed and checked just before
            flaky_s3.proxy.cut()
        return call(self, what, *args, **kwargs)

    monkeypatch.setattr(storage.S3Storage, "_call", store_goes_away)
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert_unavailable(response, "complete the upload")
    assert state_of(binary) == State.UPLOADABLE
    assert recorded_moves(binary) == [("", "uploadable")]
    assert [p.state for p in BinaryPart.objects.filter(binary=binary)] == [PartState.VALID] * 2

    monkeypatch.setattr(storage.S3Storage, "_call", call)
    flaky_s3.proxy.restore()
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert response.status_code == 200, response.content
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert recorded_moves(binary) == [
        ("", "uploadable"),
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
    ]
    assert flaky_s3.listing() == [storage.get().key(binary)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_it_retries_verification_when_the_store_stops_during_hashing(
    backend, flaky_s3, settings, tmp_path, version, actor, request
):
    # The `backend` fixture configured the suite's own S3; this test uses its private one.
    for name, value in flaky_s3.settings().items():
        setattr(settings, name, value)
    running: Workers = request.getfixturevalue("workers")
    data = random_bytes(16 * MiB)
    binary = new_binary(version, actor, data)
    for index, chunk in enumerate(split(data, 5 * MiB), start=1):
        declared = declare(binary, index, chunk)
        assert put_http(declared.upload_url, chunk, declared.part.hash).status_code == 200
    running.start()
    flaky_s3.proxy.rate = 4 * MiB  # reading 16 MiB takes ~4 s: time to pull the plug
    read_before = flaky_s3.proxy.bytes_down

    moves.mark_hashable(binary=binary, actor=actor)
    running.wait_for(
        lambda: flaky_s3.proxy.bytes_down - read_before > 5 * MiB, 60, "the read under way"
    )
    flaky_s3.proxy.cut()  # in the middle of the read
    # The task retries (1 s, then 2 s later...) and fails again while the store is away.
    running.wait_for(
        lambda: running.output().count("retry: Retry in") >= 2, 60, "two retries of the task"
    )
    assert state_of(binary) == State.HASHING  # still owned by the run, to be retried
    flaky_s3.proxy.rate = None
    flaky_s3.proxy.restore()

    running.wait_for(lambda: state_of(binary) == State.SIGNABLE, 120, "signable after retrying")
    binary.refresh_from_db()
    assert binary.verified_hash == sha256(data)
    assert binary.bytes_hashed == len(data)
    assert recorded_moves(binary) == [
        ("", "uploadable"),
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
    ]
    assert "could not" in running.output() or "stopped sending" in running.output()
    assert flaky_s3.listing() == [storage.get().key(binary)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_it_deletes_the_content_of_a_binary_reset_while_the_store_was_away(
    backend, flaky_s3, settings, engineer_api, version, actor, request
):
    for name, value in flaky_s3.settings().items():
        setattr(settings, name, value)
    data = random_bytes(1000)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, data)
    assert put_http(declared.upload_url, data, declared.part.hash).status_code == 200
    moves.mark_hashable(binary=binary, actor=actor)  # verified eagerly
    assert state_of(binary) == State.SIGNABLE
    assert flaky_s3.listing() == [storage.get().key(binary)]
    running: Workers = request.getfixturevalue("workers")  # content deletion is retried there
    running.start()

    flaky_s3.proxy.cut()
    response = engineer_api.patch(
        f"/binaries/{binary.prn}", {"state": "uploadable", "reason": "wrong build"}
    )
    assert response.status_code == 200, response.content  # the reset itself needs no store
    assert state_of(binary) == State.UPLOADABLE
    time.sleep(1)
    flaky_s3.proxy.restore()

    running.wait_for(lambda: flaky_s3.listing() == [], 60, "the content deleted after all")
    assert state_of(binary) == State.UPLOADABLE
    assert not BinaryPart.objects.filter(binary=binary).exists()


# --- Redis stopped and restarted --------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path, settings, monkeypatch) -> Iterator[PrivateRedis]:
    if PrivateRedis.binary() is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI needs redis-server for this test (apt-get install -y redis-server)")
        pytest.skip("needs redis-server (apt-get install -y redis-server)")
    redis_server = PrivateRedis(tmp_path / "redis.log").start()
    settings.CELERY_BROKER_URL = redis_server.url
    # Celery prefers the environment's CELERY_BROKER_URL (set when the suite runs on Redis)
    # to the settings: point both at this test's server.
    monkeypatch.setenv("CELERY_BROKER_URL", redis_server.url)
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    settings.CELERY_BROKER_CONNECTION_TIMEOUT = 2
    settings.CELERY_BROKER_CONNECTION_MAX_RETRIES = 2
    try:
        yield redis_server
    finally:
        redis_server.stop()
        _forget_publishing_pools()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_loses_no_verification_when_redis_stops_and_restarts(
    client, backend, private_redis, settings, version, actor, request
):
    from tests.upload_helpers import upload_all

    running: Workers = request.getfixturevalue("workers")
    assert private_redis.url == running.settings.CELERY_BROKER_URL
    settings.HASHING_STALL_SECONDS = 2
    contents = {name: random_bytes(2 * MiB + n) for n, name in enumerate("abc")}
    binaries = {
        name: new_binary(version, actor, data, target=f"{name}-soc")
        for name, data in contents.items()
    }
    for name, binary in binaries.items():
        upload_all(client, binary, contents[name])

    # A: queued while no worker runs; then Redis stops (and, keeping nothing, loses it).
    moves.mark_hashable(binary=binaries["a"], actor=actor)
    private_redis.stop()
    # B: marked hashable while Redis is down: the request succeeds, the enqueue does not.
    moves.mark_hashable(binary=binaries["b"], actor=actor)
    assert state_of(binaries["b"]) == State.HASHABLE
    private_redis.start()
    _forget_publishing_pools()
    running.start(HASHING_STALL_SECONDS="2")
    time.sleep(2.5)
    assert state_of(binaries["a"]) == state_of(binaries["b"]) == State.HASHABLE  # lost

    # The sweeper (beat runs it every minute) queues both again; the worker verifies them.
    assert tasks.sweep() == 2
    assert hashing_requeued(binaries) == ["a", "b"]
    running.wait_for(
        lambda: all(state_of(binaries[n]) == State.SIGNABLE for n in "ab"), 60, "a and b signable"
    )

    # Redis restarts under a running worker: it reconnects and takes new work.
    private_redis.stop()
    time.sleep(1)
    private_redis.start()
    _forget_publishing_pools()
    moves.mark_hashable(binary=binaries["c"], actor=actor)
    running.wait_for(lambda: state_of(binaries["c"]) == State.SIGNABLE, 90, "c signable")
    for name in "abc":
        events = recorded_moves(binaries[name])
        assert events.count(("hashable", "hashing")) == 1, events
        assert events[-1] == ("hashing", "signable")


def hashing_requeued(binaries: dict[str, Binary]) -> list[str]:
    return [
        name
        for name, binary in binaries.items()
        if BinaryEvent.objects.filter(binary=binary, details={"requeued": True}).exists()
    ]


# --- The database connection drops in the middle of a request ----------------------------------


@contextlib.contextmanager
def connection_dropped(target: Any, name: str, *, before: bool = False) -> Iterator[dict]:
    """Make the first call of `target.name` drop the database connection (after it ran, or
    `before`): on PostgreSQL the server ends the session (pg_terminate_backend from another
    connection); on SQLite the next statement fails as with a lost database."""
    original = getattr(target, name)
    seen: dict = {"dropped": 0}

    def dropping(*args: Any, **kwargs: Any) -> Any:
        first = not seen["dropped"]
        seen["dropped"] = 1
        if first and before:
            drop_connection()
        result = original(*args, **kwargs)
        if first and not before:
            drop_connection()
        return result

    setattr(target, name, dropping)
    try:
        yield seen
    finally:
        setattr(target, name, original)


def drop_connection() -> None:
    if connection.vendor == "postgresql":
        import psycopg

        from tests.test_hashing_worker import database_url

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        with psycopg.connect(database_url(), autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return
    wrapper = connection.cursor().__class__
    original_execute = wrapper.execute

    def lost(self: Any, sql: str, params: Any = None) -> Any:
        setattr(wrapper, "execute", original_execute)  # noqa: B010  (only this statement)
        raise OperationalError("disk I/O error: the database connection was lost")

    setattr(wrapper, "execute", lost)  # noqa: B010


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_answers_503_and_writes_nothing_when_the_database_drops_in_an_upload(
    client, backend, version, actor
):
    data = random_bytes(3000)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, data)
    path = declared.upload_url.removeprefix("http://testserver")

    with connection_dropped(storage.FilesystemStorage, "receive_part") as seen:
        response = client.put(path, data=data, content_type="application/octet-stream")
    connection.close()  # the test client keeps a dead connection; a server drops it
    assert seen["dropped"] == 1
    assert response.status_code == 503, response.content
    assert error_of(response) == {
        "code": "unavailable",
        "message": "The database is unreachable right now; nothing was changed. "
        "Try again in a moment.",
        "field": None,
    }
    assert response["Retry-After"] == "5"
    part = BinaryPart.objects.get(pk=declared.part.pk)  # a new connection
    assert part.state == PartState.UPLOADABLE and part.offset is None  # not recorded as valid
    # The client sends the part again: it is valid, and the binary completes.
    response = client.put(path, data=data, content_type="application/octet-stream")
    assert response.status_code == 200
    moves.mark_hashable(binary=binary, actor=actor)
    assert state_of(binary) == State.SIGNABLE


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_and_writes_nothing_when_the_database_drops_in_a_console_write(
    client, engineer_membership, version, actor, settings, tmp_path
):
    from binaries import lifecycle, moves

    settings.STORAGE_BACKEND = "filesystem"
    settings.BINARIES_ROOT = tmp_path / "binaries"
    data = random_bytes(2000)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, data)
    client.put(
        declared.upload_url.removeprefix("http://testserver"),
        data=data,
        content_type="application/octet-stream",
    )
    moves.mark_hashable(binary=binary, actor=actor)
    assert state_of(binary) == State.SIGNABLE
    events_before = recorded_moves(binary)
    client.force_login(engineer_membership.user)

    # The drop comes after the state changed and before its event is written: all or nothing.
    with connection_dropped(lifecycle.BinaryEvent.objects, "create", before=True) as seen:
        response = client.post(
            f"/binaries/{binary.uuid}/reset", {"reason": "rebuild", "confirm": "yes"}
        )
    connection.close()  # the test client keeps a dead connection; a server drops it
    assert seen["dropped"] == 1
    assert response.status_code == 503, response.content
    assert response["Content-Type"].startswith("text/plain")
    assert b"The database is unreachable right now; nothing was changed." in response.content
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert recorded_moves(binary) == events_before
    assert BinaryPart.objects.filter(binary=binary).count() == 1
    assert storage.get().exists(binary)  # the content was not deleted either
    # The page works again once the database is back.
    assert client.get(f"/binaries/{binary.uuid}/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cause", "code", "retry_after"),
    [
        ("DeadlockDetected", "busy", "1"),
        ("SerializationFailure", "busy", "1"),
        ("OperationalError", "unavailable", "5"),
    ],
)
def test_it_tells_a_collision_of_transactions_from_a_database_that_is_away(
    engineer_api, version, actor, monkeypatch, cause, code, retry_after
):
    """PostgreSQL breaks a deadlock by rolling one transaction back: nothing was written and
    sending the request again works, so the answer says so (not "unreachable")."""
    import psycopg

    binary = new_binary(version, actor, random_bytes(100))

    def collide(**kwargs: Any) -> Any:
        raise OperationalError("deadlock detected") from getattr(psycopg.errors, cause)()

    monkeypatch.setattr(uploads, "part_declare", collide)
    body = {"hash": "a" * 64, "size": 100}
    response = engineer_api.put(f"/binaries/{binary.prn}/parts/1", body)
    assert response.status_code == 503, response.content
    assert error_of(response)["code"] == code
    assert response["Retry-After"] == retry_after
    if code == "busy":
        assert error_of(response)["message"] == (
            "Another request was changing the same records at that moment; nothing was "
            "changed. Send the request again."
        )
    assert not BinaryPart.objects.filter(binary=binary).exists()
