"""Destroying a binary: its content leaves the store (retried until it is gone), its record,
signatures and events stay for ever, and nothing can be downloaded from it again."""

import pytest
from django.db import DEFAULT_DB_ALIAS
from django.test import TestCase

from binaries import content, hashing, janitor, moves, storage
from binaries.models import Binary, BinaryEvent, BinarySignature, State
from tests.api_helpers import error_of
from tests.signing_helpers import on_commit, signable_binary, signed_binary
from tests.upload_helpers import (
    MiB,
    declare,
    new_binary,
    put_bytes,
    random_bytes,
    read_back,
    sha256,
)

pytestmark = pytest.mark.django_db


def stored_for(backend, binary: Binary) -> list[str]:
    """What the store holds of this binary: the directory or the bucket, listed."""
    return [name for name in backend.listing() if str(binary.uuid) in name]


def destroy(api, binary: Binary, reason: str | None = "Leaked debug symbols"):
    with on_commit():  # content deletion is queued once the move commits
        return api.delete(f"/binaries/{binary.prn}", {"reason": reason} if reason else None)


def test_it_removes_the_content_and_keeps_the_record(client, engineer_api, backend, version, actor):
    data = random_bytes(5 * MiB + 1000)
    binary = signed_binary(client, engineer_api, version, actor, data)
    neighbour = signed_binary(
        client, engineer_api, version, actor, random_bytes(1000), target="x86_64-linux-gnu"
    )
    assert len(stored_for(backend, binary)) == 1
    before = backend.listing()
    shown_before = engineer_api.get(f"/binaries/{binary.prn}").json()["binary"]
    events_before = list(BinaryEvent.objects.filter(binary=binary).values_list("pk", flat=True))

    response = destroy(engineer_api, binary)

    assert response.status_code == 204
    assert stored_for(backend, binary) == []
    assert backend.listing() == [name for name in before if str(binary.uuid) not in name]
    assert len(stored_for(backend, neighbour)) == 1  # nothing else was touched
    assert not backend.exists(binary)
    with pytest.raises(storage.ContentMissing):
        backend.open(binary)

    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    assert binary.content_deleted_at is not None
    shown = engineer_api.get(f"/binaries/{binary.prn}").json()["binary"]
    assert shown["state"] == "destroyed"
    assert shown["signatures"] == shown_before["signatures"]
    assert shown["hash"] == shown_before["hash"] and shown["size"] == len(data)
    signatures = engineer_api.get("/binary_signatures", binary_prn=binary.prn).json()
    assert len(signatures["binary_signatures"]) == 1

    events = BinaryEvent.objects.filter(binary=binary)
    assert list(events.values_list("pk", flat=True))[: len(events_before)] == events_before
    destroyed = events.get(to_state=State.DESTROYED)
    assert destroyed.from_state == State.SIGNED
    assert destroyed.reason == "Leaked debug symbols"
    assert destroyed.actor_label.startswith(engineer_api.membership.user.username)


def test_it_answers_410_for_download_urls_afterwards(client, engineer_api, backend, version, actor):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(2000))
    destroy(engineer_api, binary)

    response = engineer_api.get(f"/binaries/{binary.prn}/download_url")

    assert response.status_code == 410
    error = error_of(response)
    assert error["code"] == "destroyed"
    assert "destroyed" in error["message"] and "cannot be downloaded" in error["message"]


def test_it_stops_a_url_issued_before_the_destroy_at_once(client, engineer_api, version, actor):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(4000))
    url = engineer_api.get(f"/binaries/{binary.prn}/download_url").json()["download_url"]
    path = url.removeprefix("http://testserver")
    first = client.get(path)
    assert first.status_code == 200
    assert b"".join(first.streaming_content) == read_back(binary)

    with on_commit() as callbacks:
        engineer_api.delete(f"/binaries/{binary.prn}")
        # Refused even before the content deletion (queued after the commit) has run.
        response = client.get(path, headers={"Range": "bytes=0-"})
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "destroyed"
    assert callbacks

    response = client.get(path)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "destroyed"


def test_it_lets_a_new_binary_take_the_destroyed_ones_target(
    client, engineer_api, backend, version, actor
):
    old = signed_binary(client, engineer_api, version, actor, random_bytes(3000))
    destroy(engineer_api, old)
    content = random_bytes(5000)

    response = engineer_api.post(
        "/binaries",
        {
            "artifact_version_prn": version.prn,
            "target": old.target,
            "hash": "sha256:" + __import__("hashlib").sha256(content).hexdigest(),
            "size": len(content),
        },
    )

    assert response.status_code == 201, response.content
    new = Binary.objects.get(uuid=response.json()["binary"]["prn"].rsplit(":", 1)[1])
    assert (new.target, new.state) == (old.target, State.UPLOADABLE)
    old.refresh_from_db()
    assert old.state == State.DESTROYED
    listed = engineer_api.get("/binaries", artifact_version_prn=version.prn).json()["binaries"]
    assert {(b["prn"], b["state"]) for b in listed} == {
        (old.prn, "destroyed"),
        (new.prn, "uploadable"),
    }


def test_it_discards_an_unfinished_upload_and_frees_its_target(
    client, engineer_api, backend, version, actor
):
    # Beyond the guide's diagram: an uploadable binary (an abandoned upload, or one made for
    # the wrong target) can be destroyed, so it no longer holds its target.
    content = random_bytes(6 * MiB)
    binary = new_binary(version, actor, content)
    declared = declare(binary, 1, content[: 5 * MiB])
    assert put_bytes(client, declared, content[: 5 * MiB]) == 200
    declare(binary, 2, content[5 * MiB :])  # declared, never sent: an open upload slot
    assert stored_for(backend, binary)  # a part file, or an open multipart upload
    neighbour = new_binary(version, actor, content, target="x86_64-linux-gnu")
    declare(neighbour, 1, content[: 5 * MiB])
    held_by_neighbour = stored_for(backend, neighbour)

    response = destroy(engineer_api, binary, reason="Made for the wrong target")

    assert response.status_code == 204, response.content
    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    assert binary.parts.count() == 0
    assert (binary.parts_count, binary.parts_bytes) == (0, 0)
    assert binary.upload_id is None  # cleared once the store confirmed the deletion
    assert binary.content_deleted_at is not None
    assert stored_for(backend, binary) == []
    assert stored_for(backend, neighbour) == held_by_neighbour
    event = BinaryEvent.objects.get(binary=binary, to_state=State.DESTROYED)
    assert (event.from_state, event.reason) == (State.UPLOADABLE, "Made for the wrong target")
    assert event.details == {
        "parts_removed": 2,
        "changes": {"state": ["uploadable", "destroyed"]},
    }

    again = engineer_api.post(
        "/binaries",
        {
            "artifact_version_prn": version.prn,
            "target": binary.target,
            "hash": sha256(content),
            "size": len(content),
        },
    )
    assert again.status_code == 201, again.content


def test_it_discards_a_hashable_binary_before_its_verification_runs(
    client, engineer_api, backend, version, actor
):
    content = random_bytes(3000)
    binary = new_binary(version, actor, content)
    declared = declare(binary, 1, content)
    assert put_bytes(client, declared, content) == 200
    # The verification is queued once the move commits; held back here, it runs late.
    with TestCase.captureOnCommitCallbacks(using=DEFAULT_DB_ALIAS, execute=False) as queued:
        moves.mark_hashable(binary=binary, actor=actor)
    assert binary.state == State.HASHABLE and queued

    response = destroy(engineer_api, binary)

    assert response.status_code == 204, response.content
    assert stored_for(backend, binary) == []
    hashing.verify(binary.pk)  # the queued verification, arriving late, changes nothing
    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    assert BinaryEvent.objects.filter(binary=binary, to_state=State.HASHING).count() == 0


def test_it_destroys_a_signable_binary(client, engineer_api, backend, version, actor):
    binary = signable_binary(client, version, actor, random_bytes(3000))

    response = destroy(engineer_api, binary, reason=None)

    assert response.status_code == 204
    assert stored_for(backend, binary) == []
    binary.refresh_from_db()
    assert (binary.state, binary.content_deleted_at is not None) == (State.DESTROYED, True)
    assert BinaryEvent.objects.get(binary=binary, to_state=State.DESTROYED).reason == ""


def test_it_takes_the_reason_as_a_query_parameter(client, engineer_api, backend, version, actor):
    binary = signable_binary(client, version, actor, random_bytes(3000))

    with on_commit():
        response = engineer_api.delete(f"/binaries/{binary.prn}", reason="Legal request")

    assert response.status_code == 204
    assert BinaryEvent.objects.get(binary=binary, to_state="destroyed").reason == "Legal request"


def test_it_destroys_once(client, engineer_api, backend, version, actor):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(1000))
    destroy(engineer_api, binary)

    again = destroy(engineer_api, binary)

    assert again.status_code == 409
    assert "none (it is final)" in error_of(again)["message"]
    assert BinaryEvent.objects.filter(binary=binary, to_state=State.DESTROYED).count() == 1


def test_it_refuses_viewers_destroying(client, engineer_api, viewer_api, backend, version, actor):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(1000))

    response = destroy(viewer_api, binary)

    assert response.status_code == 403
    assert len(stored_for(backend, binary)) == 1
    binary.refresh_from_db()
    assert binary.state == State.SIGNED


def test_it_keeps_the_signatures_of_a_destroyed_binary(
    client, engineer_api, backend, version, actor
):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(1000))
    signature = BinarySignature.objects.get(binary=binary)
    destroy(engineer_api, binary)

    response = engineer_api.delete(f"/binary_signatures/{signature.prn}")

    assert response.status_code == 409
    assert "destroyed" in error_of(response)["message"]
    assert BinarySignature.objects.filter(pk=signature.pk).exists()


def test_it_retries_deleting_the_content_until_it_is_gone(
    client, engineer_api, backend, version, actor, monkeypatch, eager_retries
):
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(2000))
    real_delete = type(backend).delete
    calls = []

    def flaky_delete(self, target):
        calls.append(target.pk)
        if len(calls) < 3:
            raise storage.StorageError("The object store could not delete the content.")
        real_delete(self, target)

    monkeypatch.setattr(type(backend), "delete", flaky_delete)

    response = destroy(engineer_api, binary)

    assert response.status_code == 204  # the request committed whatever the store said
    assert calls == [binary.pk] * 3
    assert stored_for(backend, binary) == []
    binary.refresh_from_db()
    assert binary.content_deleted_at is not None


def test_it_stops_retrying_a_deletion_and_leaves_it_to_the_janitor(
    client, engineer_api, backend, version, actor, monkeypatch, eager_retries
):
    """A store away for hours: the task gives up after its retries (it used to retry for
    ever) and the record still says the content is there, so the janitor queues it again."""
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(2000))
    calls = []

    def failing_delete(self, target):
        calls.append(target.pk)
        raise storage.StorageError("The object store could not delete the content.")

    monkeypatch.setattr(type(backend), "delete", failing_delete)

    assert destroy(engineer_api, binary).status_code == 204

    assert len(calls) == content.discard_content.max_retries + 1
    binary.refresh_from_db()
    assert binary.content_deleted_at is None
    later = binary.updated_at + __import__("datetime").timedelta(minutes=11)
    assert janitor.destroyed_with_content(now=later) == [binary.pk]


def test_it_leaves_content_deletion_unconfirmed_while_the_store_fails(
    client, engineer_api, backend, version, actor, monkeypatch
):
    """When every try fails the record says so (content_deleted_at stays empty) and the janitor
    finds it later; the content is then deleted."""
    binary = signed_binary(client, engineer_api, version, actor, random_bytes(2000))
    monkeypatch.setattr("binaries.content.enqueue_discard", lambda binary_id: None)  # broker down

    destroy(engineer_api, binary)

    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    assert binary.content_deleted_at is None
    assert len(stored_for(backend, binary)) == 1
    later = binary.updated_at + __import__("datetime").timedelta(minutes=11)
    assert janitor.destroyed_with_content(now=later) == [binary.pk]

    assert content.delete_destroyed(binary.pk) is True

    binary.refresh_from_db()
    assert binary.content_deleted_at is not None
    assert stored_for(backend, binary) == []
    assert janitor.destroyed_with_content(now=later) == []
