"""Verification of uploaded content (tasks run eagerly): the run that owns a binary moves it to
signable or back to uploadable, a reset or a take-over stops it quietly, a transient storage
failure is retried, and the sweeper queues what has no task in flight."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from binaries import hashing, lifecycle, moves, services, storage, tasks
from binaries.models import Binary, BinaryEvent, State
from tests.factories import binary_in_state
from tests.upload_helpers import MiB, new_binary, random_bytes, sha256, upload_all


def recorded_moves(binary: Binary) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in BinaryEvent.objects.filter(binary=binary)]


def fresh(binary: Binary) -> Binary:
    return Binary.objects.select_related("organization").get(pk=binary.pk)


@pytest.fixture
def no_enqueue(monkeypatch):
    """mark_hashable commits without queueing verification; the test runs it when it likes."""
    queued: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_verification", queued.append)
    return queued


def uploaded(client, version, actor, data: bytes, declared: bytes | None = None) -> Binary:
    """A binary declared with the hash and size of `declared` (default: `data`), whose parts
    carry `data`."""
    binary = new_binary(version, actor, data if declared is None else declared)
    upload_all(client, binary, data)
    return binary


def corrupt(backend, binary: Binary, content: bytes) -> None:
    """Replace the stored object behind the application's back."""
    if backend.name == "filesystem":
        backend.object_path(binary).write_bytes(content)
    else:
        backend.client.put_object(Bucket=backend.bucket, Key=backend.key(binary), Body=content)


# --- The verification run ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_matching_content_becomes_signable_with_its_verified_hash(client, backend, version, actor):
    data = random_bytes(11 * MiB + 17)
    binary = uploaded(client, version, actor, data)

    moves.mark_hashable(binary=binary, actor=actor)

    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert binary.verified_hash == sha256(data) == binary.hash
    assert binary.bytes_hashed == len(data)
    assert binary.hashing_heartbeat_at is None
    assert binary.last_error == ""
    assert recorded_moves(binary) == [
        ("", "uploadable"),
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
    ]
    signable = BinaryEvent.objects.get(binary=binary, to_state=State.SIGNABLE)
    assert signable.actor_label == "system: verifier"
    assert signable.details == {"sha256": sha256(data), "size": len(data)}


@pytest.mark.django_db(transaction=True)
def test_a_hash_mismatch_resets_to_uploadable_and_deletes_everything(
    client, backend, version, actor
):
    data = random_bytes(6 * MiB)
    declared = random_bytes(len(data))  # same size, other bytes
    binary = uploaded(client, version, actor, data, declared=declared)

    moves.mark_hashable(binary=binary, actor=actor)

    binary.refresh_from_db()
    expected = (
        f"SHA-256 mismatch: declared sha256:{sha256(declared)}, stored content is "
        f"sha256:{sha256(data)} ({len(data)} bytes)."
    )
    assert binary.state == State.UPLOADABLE
    assert binary.last_error == expected
    assert binary.verified_hash is None
    assert binary.hashing_started_at is None
    assert binary.bytes_hashed == 0
    assert binary.parts.count() == 0
    assert backend.listing() == []
    assert recorded_moves(binary)[-2:] == [("hashable", "hashing"), ("hashing", "uploadable")]
    failed = BinaryEvent.objects.filter(binary=binary).last()
    assert failed.actor_label == "system: verifier"
    assert failed.reason == expected
    assert failed.details == {"error": expected}


@pytest.mark.django_db(transaction=True)
def test_a_size_mismatch_resets_to_uploadable_and_deletes_everything(
    client, backend, version, actor, no_enqueue
):
    data = random_bytes(5 * MiB + 3)
    binary = uploaded(client, version, actor, data)
    moves.mark_hashable(binary=binary, actor=actor)
    assert no_enqueue == [binary.pk]
    stored = data + b"tail"
    corrupt(backend, binary, stored)

    assert hashing.verify(binary.pk) == "mismatch"

    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.last_error == (
        f"Size mismatch: declared {len(data)} bytes, stored content is {len(stored)} bytes "
        f"(sha256:{sha256(stored)})."
    )
    assert binary.parts.count() == 0
    assert backend.listing() == []
    assert recorded_moves(binary)[-1] == ("hashing", "uploadable")


@pytest.mark.django_db(transaction=True)
def test_missing_content_resets_to_uploadable_with_a_clear_error(
    client, backend, version, actor, no_enqueue
):
    data = random_bytes(1000)
    binary = uploaded(client, version, actor, data)
    moves.mark_hashable(binary=binary, actor=actor)
    backend.delete(fresh(binary))

    assert hashing.verify(binary.pk) == "mismatch"

    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.last_error.startswith("The content is missing from storage (")
    assert binary.last_error.endswith("); upload again.")


@pytest.mark.django_db(transaction=True)
def test_a_reset_seen_by_a_progress_write_stops_the_run_without_touching_the_row(
    client, backend, version, actor, no_enqueue, monkeypatch, settings
):
    data = random_bytes(9 * MiB)  # three 4 MiB reads
    binary = uploaded(client, version, actor, data)
    moves.mark_hashable(binary=binary, actor=actor)
    monkeypatch.setattr(hashing, "PROGRESS_EVERY", 0.1)
    settings.HASHING_BYTES_PER_SECOND = 9 * MiB  # a second's reading: several progress writes
    real_beat = hashing._beat
    progress_seen: list[int] = []

    def beat_then_reset(target, guard, done):
        real_beat(target, guard, done)
        if done and not progress_seen:
            progress_seen.append(fresh(binary).bytes_hashed)  # the first progress write landed
            moves.request_state(binary=fresh(binary), to="uploadable", actor=actor)

    monkeypatch.setattr(hashing, "_beat", beat_then_reset)

    assert hashing.verify(binary.pk) == "superseded"

    assert progress_seen[0] > 0  # the run was live and writing progress when the reset came
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.last_error == ""
    assert binary.bytes_hashed == 0  # the reset's value: the run wrote nothing after it
    assert binary.hashing_started_at is None
    assert binary.hashing_heartbeat_at is None
    assert binary.verified_hash is None
    last = BinaryEvent.objects.filter(binary=binary).last()
    assert (last.from_state, last.to_state) == ("hashing", "uploadable")
    assert last.actor_label == actor.label  # the client's reset, nothing from the verifier after
    assert backend.listing() == []


@pytest.mark.django_db(transaction=True)
def test_a_reset_between_claim_and_finish_stops_the_run_without_touching_the_row(
    client, backend, version, actor, no_enqueue, monkeypatch
):
    data = random_bytes(1 * MiB)
    binary = uploaded(client, version, actor, data)
    moves.mark_hashable(binary=binary, actor=actor)
    real_hash_stream = hashing._hash_stream

    def hash_then_reset(target, on_progress, budget=None):
        result = real_hash_stream(target, on_progress, budget)
        moves.request_state(binary=fresh(target), to="uploadable", actor=actor)
        return result

    monkeypatch.setattr(hashing, "_hash_stream", hash_then_reset)

    assert hashing.verify(binary.pk) == "superseded"

    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.verified_hash is None
    assert binary.last_error == ""
    assert recorded_moves(binary)[-2:] == [("hashable", "hashing"), ("hashing", "uploadable")]
    assert BinaryEvent.objects.filter(binary=binary, actor_label="system: verifier").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_stale_run_cannot_touch_the_run_that_replaced_it(
    client, backend, version, actor, no_enqueue, monkeypatch
):
    """Reset mid-run, new content uploaded and verified; the old run then finishes with a
    digest that matches nothing and must leave the new run's result alone."""
    first = random_bytes(1 * MiB)
    second = random_bytes(2 * MiB)
    binary = uploaded(client, version, actor, first)
    moves.mark_hashable(binary=binary, actor=actor)
    real_hash_stream = hashing._hash_stream
    replaced: list[bool] = []

    def hash_then_replace(target, on_progress, budget=None):
        result = real_hash_stream(target, on_progress, budget)
        if not replaced:
            replaced.append(True)
            moves.request_state(binary=fresh(target), to="uploadable", actor=actor)
            services.binary_update(
                binary=fresh(target), actor=actor, hash=sha256(second), size=len(second)
            )
            upload_all(client, fresh(target), second)
            moves.mark_hashable(binary=fresh(target), actor=actor)
            assert hashing.verify(target.pk) == "signable"  # the new run
        return result

    monkeypatch.setattr(hashing, "_hash_stream", hash_then_replace)

    assert hashing.verify(binary.pk) == "superseded"

    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert binary.verified_hash == sha256(second)
    assert binary.last_error == ""
    assert recorded_moves(binary).count(("hashing", "signable")) == 1
    assert recorded_moves(binary).count(("hashing", "uploadable")) == 1  # the client's reset only


@pytest.mark.django_db(transaction=True)
def test_a_transient_storage_failure_is_retried_and_ends_signable(
    client, backend, version, actor, monkeypatch, eager_retries
):
    data = random_bytes(6 * MiB)
    binary = uploaded(client, version, actor, data)
    real_open = backend.open
    opened: list[int] = []

    def open_fails_once(target):
        opened.append(target.pk)
        if len(opened) == 1:
            raise storage.StorageError("The object store could not read the content. Try again.")
        return real_open(target)

    monkeypatch.setattr(backend, "open", open_fails_once)

    moves.mark_hashable(binary=binary, actor=actor)  # the task runs (and retries) eagerly

    binary.refresh_from_db()
    assert opened == [binary.pk, binary.pk]
    assert binary.state == State.SIGNABLE
    assert binary.verified_hash == sha256(data)
    assert recorded_moves(binary)[1:] == [
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "signable"),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_storage_failure_that_outlasts_the_retries_is_left_to_the_sweeper(
    client, backend, version, actor, no_enqueue, monkeypatch, eager_retries
):
    data = random_bytes(1000)
    binary = uploaded(client, version, actor, data)
    moves.mark_hashable(binary=binary, actor=actor)
    attempts: list[int] = []

    def open_always_fails(target):
        attempts.append(target.pk)
        raise storage.StorageError("The object store refused to read the content (SlowDown).")

    monkeypatch.setattr(backend, "open", open_always_fails)

    result = tasks.verify_binary.delay(binary.pk)

    assert result.state == "FAILURE"
    assert isinstance(result.result, storage.StorageError)
    assert len(attempts) == tasks.verify_binary.max_retries + 1
    binary.refresh_from_db()
    assert binary.state == State.HASHING
    assert binary.hashing_heartbeat_at is None  # released: the next task takes it over at once
    # A verification counts as in flight until the stall delay passes: no second queueing yet.
    assert hashing.sweep() == []
    later = timezone.now() + timedelta(seconds=settings.HASHING_STALL_SECONDS + 1)
    assert hashing.sweep(now=later) == [binary.pk]
    monkeypatch.undo()
    assert hashing.verify(binary.pk) == "signable"
    assert recorded_moves(binary).count(("hashable", "hashing")) == 1


# --- Clients asking for hashing --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("state", [State.HASHABLE, State.HASHING])
def test_a_client_asking_for_hashing_while_hashable_or_hashing_is_a_no_op(state, actor):
    binary = binary_in_state(state)
    before = recorded_moves(binary)

    result = moves.request_state(binary=binary, to="hashing", actor=actor)

    assert result.state == state
    binary.refresh_from_db()
    assert binary.state == state
    assert recorded_moves(binary) == before


@pytest.mark.django_db
@pytest.mark.parametrize("state", [State.UPLOADABLE, State.DESTROYED])
def test_a_client_asking_for_hashing_from_elsewhere_is_refused(state, actor):
    binary = binary_in_state(state)
    with pytest.raises(lifecycle.TransitionRefused, match=f"The binary is {state}"):
        moves.request_state(binary=binary, to="hashing", actor=actor)
    binary.refresh_from_db()
    assert binary.state == state


# --- The sweeper -----------------------------------------------------------------------------


def claim_and_die(binary: Binary, *, seconds_ago: float) -> None:
    """What a worker that claimed the binary and was then killed leaves behind."""
    assert hashing._claim(fresh(binary)) is not None
    then = timezone.now() - timedelta(seconds=seconds_ago)
    Binary.objects.filter(pk=binary.pk).update(
        hashing_started_at=then,
        hashing_heartbeat_at=then,
        verification_queued_at=then,
        bytes_hashed=4 * MiB,
    )


def requeue_events(binary: Binary) -> list[BinaryEvent]:
    return list(BinaryEvent.objects.filter(binary=binary, actor_label="system: sweeper"))


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_requeues_a_stalled_run_which_then_finishes(
    client, backend, version, actor, monkeypatch
):
    data = random_bytes(6 * MiB)
    binary = uploaded(client, version, actor, data)
    monkeypatch.setattr(tasks, "enqueue_verification", lambda binary_id: None)
    moves.mark_hashable(binary=binary, actor=actor)
    monkeypatch.undo()
    claim_and_die(binary, seconds_ago=settings.HASHING_STALL_SECONDS + 5)

    assert tasks.sweep() == 1  # re-queued; the task runs eagerly and takes the run over

    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert binary.verified_hash == sha256(data)
    [event] = requeue_events(binary)
    assert (event.from_state, event.to_state) == ("hashing", "hashing")
    assert event.details == {"requeued": True}
    assert "stalled" in event.reason
    assert recorded_moves(binary)[1:] == [
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "hashing"),
        ("hashing", "signable"),
    ]
    assert tasks.sweep() == 0


@pytest.mark.django_db(transaction=True)
def test_each_requeue_of_a_stalled_run_is_exactly_one_event(
    client, backend, version, actor, no_enqueue
):
    binary = uploaded(client, version, actor, random_bytes(1000))
    moves.mark_hashable(binary=binary, actor=actor)
    claim_and_die(binary, seconds_ago=settings.HASHING_STALL_SECONDS + 5)
    now = timezone.now()

    assert hashing.sweep(now=now) == [binary.pk]
    assert len(requeue_events(binary)) == 1
    # Queued and not yet picked up: the next passes leave it alone...
    assert hashing.sweep(now=now + timedelta(seconds=1)) == []
    assert hashing.sweep(now=now + timedelta(seconds=settings.HASHING_STALL_SECONDS)) == []
    assert len(requeue_events(binary)) == 1
    # ...until that queueing is itself older than the stall delay.
    later = now + timedelta(seconds=settings.HASHING_STALL_SECONDS + 1)
    assert hashing.sweep(now=later) == [binary.pk]
    assert len(requeue_events(binary)) == 2
    assert all(e.details == {"requeued": True} for e in requeue_events(binary))


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_leaves_a_healthy_run_alone(client, backend, version, actor, no_enqueue):
    binary = uploaded(client, version, actor, random_bytes(1000))
    moves.mark_hashable(binary=binary, actor=actor)
    claim_and_die(binary, seconds_ago=settings.HASHING_STALL_SECONDS + 5)
    Binary.objects.filter(pk=binary.pk).update(hashing_heartbeat_at=timezone.now())

    assert hashing.sweep() == []
    assert requeue_events(binary) == []
    # (A redelivered task leaves a live run alone too: tests/test_hashing_recovery.py.)


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_queues_a_hashable_binary_that_was_never_queued(
    client, backend, version, actor, monkeypatch
):
    data = random_bytes(2 * MiB)
    binary = uploaded(client, version, actor, data)
    monkeypatch.setattr(tasks, "enqueue_verification", lambda binary_id: None)  # never queued
    moves.mark_hashable(binary=binary, actor=actor)
    monkeypatch.undo()
    binary.refresh_from_db()
    assert binary.state == State.HASHABLE
    assert binary.verification_queued_at is None

    assert tasks.sweep() == 1

    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    [event] = requeue_events(binary)
    assert (event.from_state, event.to_state) == ("hashable", "hashable")
    assert event.reason == "no verification in flight; queued"
    assert tasks.sweep() == 0


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_requeues_a_hashable_binary_whose_task_was_lost(
    client, backend, version, actor, monkeypatch
):
    binary = uploaded(client, version, actor, random_bytes(1000))

    def queued_but_lost(binary_id: int) -> None:  # recorded as queued; the broker lost it
        Binary.objects.filter(pk=binary_id).update(verification_queued_at=timezone.now())

    monkeypatch.setattr(tasks, "enqueue_verification", queued_but_lost)
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.verification_queued_at is not None
    now = timezone.now()

    assert hashing.sweep(now=now) == []  # queued a moment ago: in flight
    later = now + timedelta(seconds=settings.HASHING_STALL_SECONDS + 1)
    assert hashing.sweep(now=later) == [binary.pk]
    assert len(requeue_events(binary)) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweepers_requeue_once(client, backend, version, actor, no_enqueue):
    binary = uploaded(client, version, actor, random_bytes(1000))
    moves.mark_hashable(binary=binary, actor=actor)
    claim_and_die(binary, seconds_ago=settings.HASHING_STALL_SECONDS + 5)
    barrier = threading.Barrier(4)
    results: list[list[int]] = []
    now = timezone.now()

    def sweeper() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(hashing.sweep(now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results) == [[], [], [], [binary.pk]]
    assert len(requeue_events(binary)) == 1
