"""Completing an S3 upload is idempotent: an answer lost after the store acted never strands a
binary.

The store (a private moto server behind a proxy) does what it is asked, and its answer never
reaches the client: the proxy holds the response back until the store has acted, then cuts
every connection, as a time-out or a dropped connection does. botocore sends the request again
and the store answers NoSuchUpload (complete, abort) or makes a second upload (create).

Completing takes the store a while (moto took 22 s for 3 GiB; here 2 s): the upload is gone at
once, the object is there at the end, and botocore's retry comes in between.
"""

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from binaries import janitor, storage
from binaries.models import Binary, BinaryPart, PartState, State
from tests.test_faults import (  # noqa: F401  (the fixtures)
    BUCKET,
    FlakyS3,
    assert_unavailable,
    error_of,
    flaky_s3,
    moto_port,
)
from tests.upload_helpers import MiB, declare, new_binary, put_http, random_bytes, sha256, split

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class LostAnswer:
    """Loses the answer to the backend's next `what` request (its _call's words).

    From that request on, answers crawl through the proxy; once `acted()` says the store has
    done the work, every connection is cut and answers flow again. `back` says whether the
    proxy listens again at once (botocore's retry reaches the store) or stays away until
    restore() (the retries fail too).
    """

    def __init__(self, s3: FlakyS3, monkeypatch, what: str, acted: Callable[[], bool], back=True):
        self.s3 = s3
        self.acted = acted
        self.back = back
        self.armed = False
        self.lost = threading.Event()
        call = storage.S3Storage._call

        def calling(backend: Any, doing: str, *args: Any, **kwargs: Any) -> Any:
            if doing == what and not self.armed:
                self.armed = True
                s3.proxy.rate = 16  # bytes per second: the answer waits in the proxy
                threading.Thread(target=self._cut_once_acted, daemon=True).start()
            return call(backend, doing, *args, **kwargs)

        monkeypatch.setattr(storage.S3Storage, "_call", calling)

    def _cut_once_acted(self) -> None:
        deadline = time.monotonic() + 30
        while not self.acted() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.s3.proxy.cut()
        self.s3.proxy.rate = None
        self.lost.set()
        if self.back:
            self.s3.proxy.restore()

    def restore(self) -> None:
        self.s3.proxy.restore()


@pytest.fixture
def store(request) -> FlakyS3:
    """The private moto server behind its proxy (test_faults' flaky_s3), as the binaries store."""
    return request.getfixturevalue("flaky_s3")


COMPLETING = 2.0  # seconds from the upload gone to the object stored


@pytest.fixture
def slow_completion(monkeypatch) -> Iterator[None]:
    """moto stores a completed upload's object COMPLETING seconds after the upload is gone."""
    from moto.s3.models import S3Backend

    put = S3Backend.put_object
    assembled = threading.Semaphore(0)
    started: list[bool] = []

    def assembling(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("multipart") is None:
            return put(self, *args, **kwargs)
        started.append(True)
        time.sleep(COMPLETING)
        try:
            return put(self, *args, **kwargs)
        finally:
            assembled.release()

    monkeypatch.setattr(S3Backend, "put_object", assembling)
    yield
    for _ in started:  # none still under way to store an object into the next test's bucket
        assert assembled.acquire(timeout=30)


def upload_gone(s3: FlakyS3, binary: Binary) -> Callable[[], bool]:
    return lambda: binary.upload_id not in [u["UploadId"] for u in open_uploads(s3)]


def uploaded(version, actor, data: bytes) -> Binary:
    return send_parts(new_binary(version, actor, data), data)


def send_parts(binary: Binary, data: bytes) -> Binary:
    """Declare each 5 MiB part (the first declaration starts the upload) and PUT its bytes."""
    for index, chunk in enumerate(split(data, 5 * MiB), start=1):
        declared = declare(binary, index, chunk)
        assert put_http(declared.upload_url, chunk, declared.part.hash).status_code == 200
    binary.refresh_from_db()
    return binary


def open_uploads(s3: FlakyS3) -> list[dict]:
    return s3.direct.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def assert_verified_once(binary: Binary, data: bytes, s3: FlakyS3) -> None:
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert binary.verified_hash == sha256(data)
    assert binary.upload_id is None
    assert [(e.from_state, e.to_state) for e in binary.events.all()] == [
        ("", "uploadable"),
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
    ]
    assert s3.listing() == [storage.get().key(binary)]  # one object, no upload left


def test_it_carries_on_when_the_answer_to_complete_is_lost(
    store, slow_completion, engineer_api, version, actor, monkeypatch
):
    data = random_bytes(5 * MiB + 300)
    binary = uploaded(version, actor, data)
    lost = LostAnswer(store, monkeypatch, "complete the upload", upload_gone(store, binary))

    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})

    assert lost.lost.is_set()  # the store completed the upload and the answer was lost
    assert response.status_code == 200, response.content
    assert_verified_once(binary, data, store)


def test_after_a_lost_complete_answer_the_parts_list_and_a_rerun_carry_on(
    store, slow_completion, engineer_api, version, actor, monkeypatch
):
    data = random_bytes(5 * MiB + 300)
    binary = uploaded(version, actor, data)
    lost = LostAnswer(
        store, monkeypatch, "complete the upload", upload_gone(store, binary), back=False
    )

    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert lost.lost.is_set()
    assert_unavailable(response, "complete the upload")  # botocore's retries found no store
    lost.restore()

    # What a client does next (the CLI run again): list the parts, then mark it hashable.
    response = engineer_api.get(f"/binaries/{binary.prn}/parts")
    assert response.status_code == 200, response.content
    assert [p["state"] for p in response.json()["binary_parts"]] == [PartState.VALID] * 2
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert response.status_code == 200, response.content
    assert_verified_once(binary, data, store)


def test_an_upload_the_store_no_longer_has_is_uploaded_again(store, engineer_api, version, actor):
    """Aborted behind the application's back (a bucket lifecycle rule, an operator): the
    parts must be sent again, and the binary no longer points at the dead upload."""
    data = random_bytes(5 * MiB + 300)
    binary = uploaded(version, actor, data)
    dead = binary.upload_id
    store.direct.abort_multipart_upload(Bucket=BUCKET, Key=storage.get().key(binary), UploadId=dead)

    response = engineer_api.get(f"/binaries/{binary.prn}/parts")
    assert response.status_code == 200, response.content
    parts = response.json()["binary_parts"]
    assert [p["state"] for p in parts] == [PartState.UPLOADABLE] * 2
    binary.refresh_from_db()
    assert binary.upload_id is None
    assert BinaryPart.objects.get(binary=binary, index=1).last_error == (
        "The object store no longer has the upload this part was sent to (it was aborted or "
        "expired); upload part 1 again."
    )
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "upload_incomplete"

    uploaded_again = send_parts(binary, data)
    assert uploaded_again.upload_id not in (None, dead)
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert response.status_code == 200, response.content
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert store.listing() == [storage.get().key(binary)]


def test_a_lost_answer_to_create_leaves_an_orphan_upload_the_janitor_removes(
    store, engineer_api, version, actor, monkeypatch
):
    data = random_bytes(5 * MiB + 300)
    binary = new_binary(version, actor, data)
    lost = LostAnswer(store, monkeypatch, "start the upload", lambda: bool(open_uploads(store)))

    binary = send_parts(binary, data)

    assert lost.lost.is_set()
    ids = sorted(u["UploadId"] for u in open_uploads(store))
    assert len(ids) == 2 and binary.upload_id in ids  # botocore's retry made a second one
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert response.status_code == 200, response.content
    [orphan] = open_uploads(store)
    assert orphan["UploadId"] != binary.upload_id

    removed = janitor.remove_orphans(now=timezone.now() + janitor.ORPHAN_AGE + timedelta(1))

    assert removed == [f"(multipart upload) {storage.get().key(binary)}"]
    assert_verified_once(binary, data, store)


def test_a_lost_answer_to_abort_counts_as_done(store, monkeypatch, org):
    """The janitor aborts an upload no binary owns; botocore's retry hears NoSuchUpload."""
    key = f"binaries/{org.uuid}/{uuid.uuid4()}"  # no binary's
    store.direct.create_multipart_upload(Bucket=BUCKET, Key=key)
    LostAnswer(store, monkeypatch, "abort the upload", lambda: not open_uploads(store))

    removed = janitor.remove_orphans(now=timezone.now() + janitor.ORPHAN_AGE + timedelta(1))

    assert removed == [f"(multipart upload) {key}"]
    assert store.listing() == []


def test_only_complete_and_reading_the_object_wait_long_for_an_answer(store):
    """S3 may work for minutes on a large CompleteMultipartUpload, and a store may take a while
    before the first byte of a large object; every other call fails fast."""
    backend = storage.get()
    assert backend.client.meta.config.read_timeout == 15
    assert backend.completing_client.meta.config.read_timeout == 600
    assert backend.reading_client.meta.config.read_timeout == 120  # reading the whole object
    assert backend.completing_client.meta.config.connect_timeout == 5
