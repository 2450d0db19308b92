import pytest

from binaries import moves, storage, uploads
from binaries.models import PartState, State
from tests.upload_helpers import (
    MiB,
    declare,
    new_binary,
    put_bytes,
    random_bytes,
    split,
    upload_all,
)


def read_back(binary) -> bytes:
    with storage.get().open(binary) as stream:
        return b"".join(bytes(c) for c in storage.read_chunks(stream))


@pytest.mark.django_db(transaction=True)
def test_it_takes_parts_out_of_order_to_hashable(client, backend, version, actor):
    data = random_bytes(11 * MiB + 123)
    binary = new_binary(version, actor, data)
    chunks = split(data, 5 * MiB)
    for index in (3, 1, 2):
        declared = declare(binary, index, chunks[index - 1])
        assert put_bytes(client, declared, chunks[index - 1]) == 200
    assert [p.state for p in uploads.parts_refresh(binary)] == [PartState.VALID] * 3
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    # Tasks run eagerly in tests: verification followed the commit.
    assert binary.state == State.SIGNABLE
    assert binary.verified_hash == binary.hash
    assert read_back(binary) == data
    leftovers = [
        k for k in backend.listing() if "partial" in k or ".parts" in k or "multipart" in k
    ]
    assert leftovers == []


@pytest.mark.django_db(transaction=True)
def test_it_refuses_hashable_with_a_missing_part(client, backend, version, actor):
    data = random_bytes(11 * MiB)
    binary = new_binary(version, actor, data)
    chunks = split(data, 5 * MiB)
    for index in (1, 3):
        assert (
            put_bytes(client, declare(binary, index, chunks[index - 1]), chunks[index - 1]) == 200
        )
    with pytest.raises(uploads.Conflict, match="missing parts 2"):
        moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.events.count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_resets_and_leaves_nothing_behind(client, backend, version, actor):
    data = random_bytes(6 * MiB)
    binary = new_binary(version, actor, data)
    upload_all(client, binary, data)
    moves.mark_hashable(binary=binary, actor=actor)
    assert backend.listing() != []
    uploads.reset(binary=binary, actor=actor, reason="try again")
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.parts.count() == 0
    assert backend.listing() == []
