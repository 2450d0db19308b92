"""Reset, destroy and the janitor leave no object, multipart upload or part file behind:
the bucket and the directory are listed to prove it."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from binaries import janitor, lifecycle, moves, storage, tasks, uploads
from binaries.models import Binary, BinaryEvent, BinaryPart, State
from peridio_console.accounts.actors import Actor
from tests.upload_helpers import (
    MiB,
    declare,
    new_binary,
    put_bytes,
    random_bytes,
    read_back,
    split,
    upload_all,
)

LONG_AGO = timedelta(days=8)  # ABANDONED_UPLOAD_DAYS is 7


def half_uploaded(client, version, actor, target="arm-linux-gnueabihf") -> tuple[Binary, bytes]:
    """Parts 3 and 1 of 3 sent (one in place, one in a file of its own), part 2 missing."""
    data = random_bytes(2 * 5 * MiB + 77)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data, target=target)
    for index in (3, 1):
        assert (
            put_bytes(client, declare(binary, index, chunks[index - 1]), chunks[index - 1]) == 200
        )
    binary.refresh_from_db()
    return binary, data


def age(binary: Binary, by: timedelta = LONG_AGO) -> None:
    then = timezone.now() - by
    Binary.objects.filter(pk=binary.pk).update(updated_at=then)
    BinaryPart.objects.filter(binary=binary).update(updated_at=then)


# --- Reset and destroy ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("state", [State.HASHABLE, State.HASHING, State.SIGNABLE])
def test_it_resets_and_leaves_no_bytes_behind(client, backend, version, actor, state, monkeypatch):
    monkeypatch.setattr(tasks, "enqueue_verification", lambda binary_id: None)
    data = random_bytes(5 * MiB + 3)
    binary = new_binary(version, actor, data)
    upload_all(client, binary, data)
    moves.mark_hashable(binary=binary, actor=actor)
    for step in {
        State.HASHABLE: [],
        State.HASHING: [State.HASHING],
        State.SIGNABLE: [State.HASHING, State.SIGNABLE],
    }[state]:
        lifecycle.transition(binary, to=step, actor=Actor.system("verifier stand-in"))
    assert read_back(binary) == data
    assert len(backend.listing()) == 1

    uploads.reset(binary=binary, actor=actor, reason="new build")

    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.parts.count() == 0
    assert binary.upload_id is None
    assert backend.listing() == []
    assert storage.get().exists(binary) is False
    # The same binary takes new content afterwards.
    upload_all(client, binary, data)
    monkeypatch.undo()
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error


@pytest.mark.django_db(transaction=True)
def test_it_destroys_the_content_and_keeps_the_record(client, backend, version, actor):
    data = random_bytes(5 * MiB + 3)
    binary = new_binary(version, actor, data)
    upload_all(client, binary, data)
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert len(backend.listing()) == 1

    moves.destroy(binary=binary, actor=actor, reason="recalled")

    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    assert backend.listing() == []
    assert binary.events.last().reason == "recalled"


# --- The janitor ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_cleans_an_abandoned_upload_to_the_last_byte(client, backend, version, actor):
    binary, data = half_uploaded(client, version, actor)
    held = backend.listing()
    if backend.name == "filesystem":
        token = BinaryPart.objects.get(binary=binary, index=3).token
        base = f"{binary.organization.uuid}/{binary.uuid}"
        assert held == [f"{base}.partial", f"{base}.parts/3.{token}"]
    else:
        assert held == [f"(multipart upload) {storage.object_key(binary)}"]
    age(binary)

    cleaned = janitor.clean_abandoned_uploads()

    assert [b.pk for b in cleaned] == [binary.pk]
    assert backend.listing() == []
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.parts.count() == 0
    assert binary.upload_id is None
    event = BinaryEvent.objects.filter(binary=binary).last()
    assert event.actor_label == janitor.JANITOR.label
    assert event.reason == "Upload abandoned for over 7 days: 2 part(s) and their bytes removed."
    assert event.details == {"parts_removed": 2}
    # A second run finds nothing; the client can still upload from scratch.
    assert janitor.clean_abandoned_uploads() == []
    upload_all(client, binary, data)
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data


@pytest.mark.django_db(transaction=True)
def test_it_cleans_abandoned_uploads_from_the_command(client, backend, version, actor):
    old, _ = half_uploaded(client, version, actor, target="old")
    age(old)
    out = StringIO()

    call_command("cleanup_uploads", stdout=out)

    assert out.getvalue().splitlines() == [
        f"Cleaned {old.prn}",
        "1 abandoned upload(s) cleaned.",
        "0 orphaned file(s) or upload(s) removed.",
    ]
    assert backend.listing() == []
    out = StringIO()
    call_command("cleanup_uploads", stdout=out)
    assert out.getvalue().splitlines() == [
        "0 abandoned upload(s) cleaned.",
        "0 orphaned file(s) or upload(s) removed.",
    ]


@pytest.mark.django_db(transaction=True)
def test_it_leaves_live_uploads_and_finished_binaries_alone(client, backend, version, actor):
    fresh, _ = half_uploaded(client, version, actor, target="fresh")
    # Created long ago, but a part arrived today: the upload is being resumed, not abandoned.
    resumed, _ = half_uploaded(client, version, actor, target="resumed")
    age(resumed)
    BinaryPart.objects.filter(binary=resumed, index=3).update(updated_at=timezone.now())
    data = random_bytes(5 * MiB)
    finished = new_binary(version, actor, data, target="done")
    upload_all(client, finished, data)
    moves.mark_hashable(binary=finished, actor=actor)
    age(finished)
    held = backend.listing()

    assert janitor.clean_abandoned_uploads() == []

    assert backend.listing() == held
    assert fresh.parts.count() == 2
    assert resumed.parts.count() == 2
    finished.refresh_from_db()
    assert finished.state == State.SIGNABLE
    assert read_back(finished) == data
