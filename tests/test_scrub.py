"""Scrubbing: signed content is re-verified now and then, within a bytes-per-second budget; a
stored object that no longer matches what was verified is flagged, with an event."""

import types
from datetime import timedelta

import pytest
from django.utils import timezone

from binaries import hashing, lifecycle, moves, storage, tasks
from binaries.models import Binary, BinaryEvent, State
from peridio_console.accounts.actors import Actor
from tests.upload_helpers import MiB, new_binary, random_bytes, sha256, upload_all


def signed(client, version, actor, data: bytes, target: str = "arm-linux-gnueabihf") -> Binary:
    binary = new_binary(version, actor, data, target=target)
    upload_all(client, binary, data)
    moves.mark_hashable(binary=binary, actor=actor)  # verified eagerly
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    lifecycle.transition(binary, to=State.SIGNED, actor=Actor.system("test signer"))
    return Binary.objects.select_related("organization").get(pk=binary.pk)


def overwrite(backend, binary: Binary, offset: int, patch: bytes) -> None:
    """Damage the stored object in place: bit rot on a disk, a stray write to a bucket."""
    if backend.name == "filesystem":
        with open(backend.object_path(binary), "r+b") as handle:
            handle.seek(offset)
            handle.write(patch)
    else:
        client = backend.client
        body = client.get_object(Bucket=backend.bucket, Key=backend.key(binary))["Body"].read()
        damaged = body[:offset] + patch + body[offset + len(patch) :]
        client.put_object(Bucket=backend.bucket, Key=backend.key(binary), Body=damaged)


def scrub_events(binary: Binary) -> list[BinaryEvent]:
    return list(BinaryEvent.objects.filter(binary=binary, actor_label="system: scrubber"))


@pytest.mark.django_db(transaction=True)
def test_clean_content_scrubs_ok(client, backend, version, actor):
    binary = signed(client, version, actor, random_bytes(5 * MiB + 1))
    events_before = binary.events.count()

    assert hashing.scrub_one(binary) == "ok"

    binary.refresh_from_db()
    assert binary.scrubbed_at is not None
    assert binary.integrity_failed_at is None
    assert binary.last_error == ""
    assert binary.events.count() == events_before


@pytest.mark.django_db(transaction=True)
def test_corrupted_content_is_flagged_with_an_error_and_an_event(client, backend, version, actor):
    data = random_bytes(5 * MiB + 1)
    binary = signed(client, version, actor, data)
    offset = 3 * MiB
    flipped = bytes(b ^ 0xFF for b in data[offset : offset + 16])
    overwrite(backend, binary, offset, flipped)
    damaged = data[:offset] + flipped + data[offset + 16 :]

    assert hashing.scrub_one(binary) == "failed"

    binary.refresh_from_db()
    expected = (
        f"Integrity check failed: the stored content is sha256:{sha256(damaged)} "
        f"({len(data)} bytes) but sha256:{sha256(data)} was verified; downloads are refused."
    )
    assert binary.state == State.SIGNED
    assert binary.integrity_failed_at is not None
    assert binary.scrubbed_at is not None
    assert binary.last_error == expected
    [event] = scrub_events(binary)
    assert (event.from_state, event.to_state) == ("signed", "signed")
    assert event.reason == expected
    assert event.details == {"found": sha256(damaged), "size": len(data)}
    # Flagged binaries are not scrubbed again (and flagged again) at every pass.
    assert binary.pk not in [b.pk for b in hashing.due_for_scrub()]


@pytest.mark.django_db(transaction=True)
def test_missing_content_is_flagged(client, backend, version, actor):
    data = random_bytes(1000)
    binary = signed(client, version, actor, data)
    backend.delete(binary)

    assert hashing.scrub_one(binary) == "failed"

    binary.refresh_from_db()
    assert binary.integrity_failed_at is not None
    assert binary.last_error == (
        f"Integrity check failed: the stored content is sha256:missing (0 bytes) but "
        f"sha256:{sha256(data)} was verified; downloads are refused."
    )
    assert len(scrub_events(binary)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_binary_destroyed_while_scrubbed_is_not_flagged(client, backend, version, actor):
    binary = signed(client, version, actor, random_bytes(1000))
    stale = Binary.objects.select_related("organization").get(pk=binary.pk)  # what the scrub read
    moves.destroy(binary=binary, actor=actor, reason="retired")  # content deleted on purpose

    assert hashing.scrub_one(stale) == "skipped"

    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    assert binary.integrity_failed_at is None
    assert scrub_events(binary) == []


@pytest.mark.django_db(transaction=True)
def test_the_scrub_task_checks_what_is_due_and_flags_only_the_damaged(
    client, backend, version, actor, settings
):
    good_data = random_bytes(2 * MiB)
    bad_data = random_bytes(2 * MiB)
    good = signed(client, version, actor, good_data, target="aarch64-linux-gnu")
    bad = signed(client, version, actor, bad_data, target="x86_64-linux-gnu")
    overwrite(backend, bad, 0, bytes(b ^ 1 for b in bad_data[:8]))
    assert {b.pk for b in hashing.due_for_scrub()} == {good.pk, bad.pk}

    assert tasks.scrub() == 2

    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.integrity_failed_at is None and good.scrubbed_at is not None
    assert bad.integrity_failed_at is not None
    assert bad.last_error.startswith("Integrity check failed: the stored content is sha256:")
    assert len(scrub_events(bad)) == 1
    assert scrub_events(good) == []
    # Nothing is due until the interval has passed; then only the clean one comes back.
    assert list(hashing.due_for_scrub()) == []
    later = timezone.now() + timedelta(seconds=settings.SCRUB_INTERVAL_SECONDS + 1)
    assert [b.pk for b in hashing.due_for_scrub(now=later)] == [good.pk]
    assert tasks.scrub() == 0


@pytest.mark.django_db(transaction=True)
def test_a_transient_storage_failure_leaves_the_binary_due(
    client, backend, version, actor, monkeypatch
):
    binary = signed(client, version, actor, random_bytes(1000))

    def unreachable(target):
        raise storage.StorageError("The object store could not read the content. Try again.")

    monkeypatch.setattr(backend, "open", unreachable)

    assert tasks.scrub() == 1

    binary.refresh_from_db()
    assert binary.integrity_failed_at is None
    assert binary.scrubbed_at is None
    assert [b.pk for b in hashing.due_for_scrub()] == [binary.pk]
    assert scrub_events(binary) == []


@pytest.mark.django_db(transaction=True)
def test_scrubbing_keeps_to_its_bytes_per_second_budget(
    client, backend, version, actor, settings, monkeypatch
):
    data = random_bytes(12 * MiB)
    binary = signed(client, version, actor, data)
    settings.SCRUB_BYTES_PER_SECOND = 2 * MiB
    clock = {"now": 0.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # a fake clock: the budget is checked, not waited for
        slept.append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(
        hashing, "time", types.SimpleNamespace(monotonic=lambda: clock["now"], sleep=sleep)
    )

    assert hashing.scrub_one(binary) == "ok"

    # 12 MiB at 2 MiB/s: six seconds, spread over the reads rather than taken at the end.
    assert sum(slept) == pytest.approx(len(data) / settings.SCRUB_BYTES_PER_SECOND)
    assert len(slept) >= 3


@pytest.mark.django_db(transaction=True)
def test_verification_itself_is_not_throttled(client, backend, version, actor, monkeypatch):
    monkeypatch.setattr(
        hashing,
        "time",
        types.SimpleNamespace(monotonic=hashing.time.monotonic, sleep=pytest.fail),
    )
    binary = new_binary(version, actor, data := random_bytes(9 * MiB))
    upload_all(client, binary, data)
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE


@pytest.mark.django_db(transaction=True)
def test_overlapping_scrub_runs_never_read_the_same_content(
    client, backend, version, actor, monkeypatch
):
    """A run still going when the next one starts (the schedule is every 10 minutes, a big
    store can take longer): each due binary is read by one run only."""
    first = signed(client, version, actor, random_bytes(MiB), target="aarch64-linux-gnu")
    second = signed(client, version, actor, random_bytes(MiB), target="x86_64-linux-gnu")
    reads: list[int] = []
    real_scrub_one = hashing.scrub_one
    overlapping = {"started": False}

    def scrub_one(binary):
        reads.append(binary.pk)
        if not overlapping["started"]:  # the next run starts while this one reads
            overlapping["started"] = True
            assert tasks.scrub() == 1
        return real_scrub_one(binary)

    monkeypatch.setattr(hashing, "scrub_one", scrub_one)
    assert tasks.scrub() == 1

    assert sorted(reads) == sorted([first.pk, second.pk])
    assert list(hashing.due_for_scrub()) == []


@pytest.mark.django_db(transaction=True)
def test_a_scrub_that_cannot_read_leaves_the_binary_due(
    client, backend, version, actor, monkeypatch
):
    binary = signed(client, version, actor, random_bytes(MiB))

    def store_away(target):
        raise storage.StorageError("The object store could not read the content.")

    monkeypatch.setattr(hashing, "scrub_one", store_away)
    assert tasks.scrub() == 1

    assert [b.pk for b in hashing.due_for_scrub()] == [binary.pk]
    binary.refresh_from_db()
    assert binary.scrubbed_at is None
