"""Resuming: a client that stopped half-way lists the parts and sends only what is missing."""

import pytest

from binaries import moves, uploads
from binaries.models import Binary, PartState, State
from tests.upload_helpers import (
    MiB,
    declare,
    declare_at,
    new_binary,
    put_bytes,
    put_http,
    random_bytes,
    raw_put,
    read_back,
    sha256,
    split,
)


def to_send(binary: Binary, chunks: list[bytes]) -> list[int]:
    """What a resuming client computes from the part list: indexes not held valid."""
    held = {p.index: p for p in uploads.parts_refresh(Binary.objects.get(pk=binary.pk))}
    return [
        index
        for index, chunk in enumerate(chunks, start=1)
        if index not in held
        or held[index].state != PartState.VALID
        or held[index].hash != sha256(chunk)
        or held[index].size != len(chunk)
    ]


@pytest.mark.django_db(transaction=True)
def test_it_resumes_by_sending_only_the_missing_parts(backend, version, actor, live_server):
    data = random_bytes(5 * 5 * MiB + 99)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    base_url = live_server.url + "/"
    # First session: parts 1, 2 and 4 arrive; part 3 was declared but its connection died
    # after 2 MiB; part 5 and 6 were never declared.
    for index in (1, 2, 4):
        declared = declare_at(binary, index, chunks[index - 1], base_url)
        assert (
            put_http(declared.upload_url, chunks[index - 1], declared.part.hash).status_code == 200
        )
    broken = declare_at(binary, 3, chunks[2], base_url)
    if backend.name == "filesystem":
        status, _ = raw_put(broken.upload_url, chunks[2][: 2 * MiB], content_length=5 * MiB)
        assert status == 422
    else:
        put_http(broken.upload_url, chunks[2][: 2 * MiB], broken.part.hash)

    # Second session: list, then send only what is not there.
    missing = to_send(binary, chunks)
    assert missing == [3, 5, 6]
    assert Binary.objects.get(pk=binary.pk).parts.get(index=3).state == PartState.INVALID_SIZE
    sent = []
    for index in missing:
        declared = declare_at(binary, index, chunks[index - 1], base_url)
        assert (
            put_http(declared.upload_url, chunks[index - 1], declared.part.hash).status_code == 200
        )
        sent.append(index)
    assert to_send(binary, chunks) == []

    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data
    assert sent == [3, 5, 6]


@pytest.mark.django_db(transaction=True)
def test_it_keeps_valid_parts_across_a_resume(client, backend, version, actor):
    data = random_bytes(3 * 5 * MiB)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    assert put_bytes(client, declare(binary, 2, chunks[1]), chunks[1]) == 200
    before = {p.index: (p.state, p.token) for p in uploads.parts_refresh(binary)}
    # Listing again and again changes nothing.
    for _ in range(3):
        assert {p.index: (p.state, p.token) for p in uploads.parts_refresh(binary)} == before
    for index in to_send(binary, chunks):
        assert (
            put_bytes(client, declare(binary, index, chunks[index - 1]), chunks[index - 1]) == 200
        )
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_asks_again_for_parts_whose_bytes_went_missing(client, backend, version, actor):
    data = random_bytes(2 * 5 * MiB + 5)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    # Parts 3 then 1 arrive: part 3 waits in a file of its own, part 1 goes in place.
    for index in (3, 1):
        assert (
            put_bytes(client, declare(binary, index, chunks[index - 1]), chunks[index - 1]) == 200
        )
    assert to_send(binary, chunks) == [2]
    # Someone cleans the disk under us.
    for name in backend.listing():
        (backend.root / name).unlink()

    parts = uploads.parts_refresh(binary)

    assert [(p.index, p.state) for p in parts] == [(1, "uploadable"), (3, "uploadable")]
    assert parts[0].last_error == "Part 1's bytes are missing; upload it again."
    assert to_send(binary, chunks) == [1, 2, 3]
    for index in (1, 2, 3):
        assert (
            put_bytes(client, declare(binary, index, chunks[index - 1]), chunks[index - 1]) == 200
        )
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data


@pytest.mark.django_db(transaction=True)
def test_it_resumes_with_the_same_url_after_a_broken_part(client, backend, version, actor):
    """Re-declaring is not needed to retry a part: its URL stays good until it expires."""
    data = random_bytes(5 * MiB + 1)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    first = declare(binary, 1, chunks[0])
    second = declare(binary, 2, chunks[1])
    assert put_bytes(client, second, chunks[1]) == 200
    if backend.name == "filesystem":
        broken = client.put(
            first.upload_url.removeprefix("http://testserver"),
            data=chunks[0][:100],
            content_type="application/octet-stream",
        )
        assert broken.status_code == 422
    else:
        assert put_http(first.upload_url, chunks[0][:100], first.part.hash).status_code == 200
    assert to_send(binary, chunks) == [1]
    assert put_bytes(client, first, chunks[0]) == 200
    assert to_send(binary, chunks) == []
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data
