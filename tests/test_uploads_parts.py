"""Declaring and sending parts on both backends: out of order, in parallel, re-put, empty
binaries, and every refusal of a declaration with the message that says why."""

import random
from urllib.parse import urlsplit

import pytest

from binaries import lifecycle, moves, services, storage, uploads
from binaries.models import MAX_PART_SIZE, BinaryPart, PartState, State
from peridio_console.accounts.actors import Actor
from peridio_console.core.errors import Conflict, InvalidInput
from tests.upload_helpers import (
    MiB,
    base_url_for,
    declare,
    declare_at,
    new_binary,
    put_bytes,
    put_http,
    random_bytes,
    read_back,
    sha256,
    split,
    upload_parallel,
)

GiB = 1 << 30


def object_name(backend, binary) -> str:
    """How the finished object shows in backend.listing()."""
    if backend.name == "filesystem":
        return f"{binary.organization.uuid}/{binary.uuid}.bin"
    return storage.object_key(binary)


# --- Out of order and in parallel ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_takes_parts_put_at_once_by_threads_in_shuffled_order(
    backend, version, actor, live_server
):
    data = random_bytes(6 * 5 * MiB + 321)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    order = list(range(1, len(chunks) + 1))
    random.Random(4).shuffle(order)

    statuses = upload_parallel(binary, chunks, base_url_for(backend, live_server), order)

    assert statuses == dict.fromkeys(order, 200)
    binary.refresh_from_db()  # the threads started the multipart upload on their own copies
    parts = uploads.parts_refresh(binary)
    assert [(p.index, p.size, p.state) for p in parts] == [
        (i, len(c), PartState.VALID) for i, c in enumerate(chunks, start=1)
    ]
    if backend.name == "filesystem":
        # Every lower part was declared before any byte arrived: all were written in place.
        assert [p.offset for p in parts] == [i * 5 * MiB for i in range(len(chunks))]
        assert [k.rsplit(".", 1)[1] for k in backend.listing()] == ["partial"]
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data
    assert backend.listing() == [object_name(backend, binary)]


@pytest.mark.django_db(transaction=True)
def test_it_assembles_parts_sent_last_to_first(client, backend, version, actor):
    data = random_bytes(3 * 5 * MiB + 7)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    for index in (4, 3, 2, 1):  # no lower part is declared when each arrives
        declared = declare(binary, index, chunks[index - 1])
        assert put_bytes(client, declared, chunks[index - 1]) == 200
    if backend.name == "filesystem":
        held = backend.listing()
        assert sum(".parts/" in k for k in held) == 3, held  # parts 2-4 waited in files
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data
    assert backend.listing() == [object_name(backend, binary)]


# --- Re-put --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_replaces_a_part_that_is_put_again(client, backend, version, actor):
    data = random_bytes(5 * MiB + 100)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    wrong = random_bytes(5 * MiB)
    first = declare(binary, 1, wrong)
    assert put_bytes(client, first, wrong) == 200  # right bytes for what was declared then
    assert put_bytes(client, declare(binary, 2, chunks[1]), chunks[1]) == 200

    second = declare(binary, 1, chunks[0])  # the client noticed: same index, new content
    assert second.part.pk == first.part.pk
    assert second.part.state == PartState.UPLOADABLE
    assert second.part.hash == sha256(chunks[0])
    assert binary.parts.count() == 2
    if backend.name == "filesystem":
        # The old URL died with the old declaration; it says so and writes nothing.
        response = client.put(
            first.upload_url.removeprefix("http://testserver"),
            data=wrong,
            content_type="application/octet-stream",
        )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "superseded"
        assert "declared again" in response.json()["error"]["message"]
        assert BinaryPart.objects.get(pk=first.part.pk).state == PartState.UPLOADABLE
    assert put_bytes(client, second, chunks[0]) == 200

    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data


@pytest.mark.django_db(transaction=True)
def test_it_asks_again_for_parts_moved_by_an_earlier_part_changing_size(
    client, backend, version, actor
):
    data = random_bytes(15 * MiB)
    binary = new_binary(version, actor, data)
    # First plan: 5 MiB parts. Parts 1 and 2 are declared; part 2's bytes go in place.
    assert put_bytes(client, declare(binary, 1, data[: 5 * MiB]), data[: 5 * MiB]) == 200
    part_two = declare(binary, 2, data[5 * MiB : 10 * MiB])
    assert put_bytes(client, part_two, data[5 * MiB : 10 * MiB]) == 200

    # New plan: part 1 grows to 6 MiB, so part 2 now starts at 6 MiB.
    one = declare(binary, 1, data[: 6 * MiB])
    two = BinaryPart.objects.get(binary=binary, index=2)
    if backend.name == "filesystem":
        assert two.state == PartState.UPLOADABLE
        assert "earlier part changed size" in two.last_error
        # The URL issued for the old placement is dead too.
        response = client.put(
            part_two.upload_url.removeprefix("http://testserver"),
            data=data[5 * MiB : 10 * MiB],
            content_type="application/octet-stream",
        )
        assert response.status_code == 409
    assert put_bytes(client, one, data[: 6 * MiB]) == 200
    for index, (start, end) in ((2, (6 * MiB, 11 * MiB)), (3, (11 * MiB, 15 * MiB))):
        chunk = data[start:end]
        assert put_bytes(client, declare(binary, index, chunk), chunk) == 200
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data


# --- Zero bytes ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_takes_a_zero_byte_binary_without_parts(backend, version, actor):
    binary = new_binary(version, actor, b"")
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert binary.verified_hash == sha256(b"")
    assert read_back(binary) == b""
    assert backend.listing() == [object_name(backend, binary)]


# --- Refusals of a declaration -------------------------------------------------------------


def refused(binary, **kwargs) -> InvalidInput | Conflict:
    arguments = {"index": 1, "hash": "0" * 64, "size": 5 * MiB, "base_url": "http://testserver/"}
    arguments.update(kwargs)
    with pytest.raises((InvalidInput, Conflict)) as caught:
        uploads.part_declare(binary=binary, **arguments)
    return caught.value


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("index", [0, 10_001, -1, "1", 1.0, True, None])
def test_it_refuses_an_index_out_of_range(backend, version, actor, index):
    binary = new_binary(version, actor, random_bytes(10))
    error = refused(binary, index=index)
    assert error.status == 400
    assert error.field == "index"
    assert "from 1 to 10000" in error.message
    assert repr(index) in error.message
    assert binary.parts.count() == 0
    assert backend.listing() == []


@pytest.mark.django_db(transaction=True)
def test_it_takes_the_first_and_last_possible_index(backend, version, actor):
    binary = services.binary_create(
        artifact_version=version, target="universal", actor=actor, hash="1" * 64, size=20 * GiB
    )
    for index in (1, 10_000):
        declared = uploads.part_declare(
            binary=binary, index=index, hash="2" * 64, size=5 * MiB, base_url="http://testserver/"
        )
        assert declared.part.index == index
        assert declared.upload_url


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_small_part_that_does_not_end_the_binary(backend, version, actor):
    binary = new_binary(version, actor, random_bytes(11 * MiB))
    error = refused(binary, index=1, size=5 * MiB - 1)
    assert error.field == "size"
    assert "every part but the last must be at least 5 MiB (5242880 bytes)" in error.message
    assert "Part 1 is 5242879 bytes" in error.message
    # Below a part that exists, a short part cannot be the last one either.
    uploads.part_declare(
        binary=binary, index=3, hash="3" * 64, size=1 * MiB, base_url="http://testserver/"
    )
    error = refused(binary, index=2, size=4 * MiB)
    assert "every part but the last" in error.message
    # The part that ends the binary may be short.
    uploads.part_declare(
        binary=binary, index=1, hash="1" * 64, size=5 * MiB, base_url="http://testserver/"
    )
    uploads.part_declare(
        binary=binary, index=2, hash="2" * 64, size=5 * MiB, base_url="http://testserver/"
    )
    assert [p.size for p in binary.parts.all()] == [5 * MiB, 5 * MiB, 1 * MiB]


@pytest.mark.django_db(transaction=True)
def test_it_refuses_hashable_when_a_short_part_turned_out_not_last(client, backend, version, actor):
    data = random_bytes(11 * MiB)
    binary = new_binary(version, actor, data)
    # Part 2 is short; with part 1 unknown it might have been last, so it was taken then.
    layout = {2: data[5 * MiB : 6 * MiB], 1: data[: 5 * MiB], 3: data[6 * MiB :]}
    for index, chunk in layout.items():
        assert put_bytes(client, declare(binary, index, chunk), chunk) == 200
    with pytest.raises(Conflict, match=r"parts 2 are under 5 MiB but not last") as caught:
        moves.mark_hashable(binary=binary, actor=actor)
    assert caught.value.status == 409
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_part_over_5_gib(backend, version, actor):
    binary = services.binary_create(
        artifact_version=version, target="universal", actor=actor, hash="1" * 64, size=20 * GiB
    )
    error = refused(binary, size=MAX_PART_SIZE + 1)
    assert error.field == "size"
    assert error.message == (
        f"A part can be at most 5 GiB ({MAX_PART_SIZE} bytes); got {MAX_PART_SIZE + 1}."
    )
    ok = uploads.part_declare(
        binary=binary, index=1, hash="2" * 64, size=MAX_PART_SIZE, base_url="http://testserver/"
    )
    assert ok.part.size == MAX_PART_SIZE


@pytest.mark.django_db(transaction=True)
def test_it_refuses_parts_that_would_exceed_the_binary(backend, version, actor):
    binary = new_binary(version, actor, random_bytes(11 * MiB))
    for index in (1, 2):
        uploads.part_declare(
            binary=binary, index=index, hash="1" * 64, size=5 * MiB, base_url="http://testserver/"
        )
    error = refused(binary, index=3, size=1 * MiB + 1)
    assert error.field == "size"
    assert error.message == (
        f"Part 3 of {MiB + 1} bytes would make the parts {11 * MiB + 1} bytes in all, more "
        f"than the binary's declared size of {11 * MiB}."
    )
    assert binary.parts.count() == 2
    # A single part larger than the whole binary, too.
    small = new_binary(version, actor, random_bytes(100), target="universal")
    error = refused(small, size=101)
    assert "more than the binary's declared size of 100" in error.message


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bad", ["abc", "sha256:" + "g" * 64, "0" * 63, "", None, 12])
def test_it_refuses_a_bad_hash(backend, version, actor, bad):
    binary = new_binary(version, actor, random_bytes(10))
    error = refused(binary, hash=bad, size=10)
    assert error.field == "hash"
    assert "hash must be a SHA-256 as sha256:<64 hex digits> or <64 hex digits>" in error.message
    assert binary.parts.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_accepts_a_hash_with_the_sha256_prefix(backend, version, actor):
    data = random_bytes(10)
    binary = new_binary(version, actor, data)
    declared = uploads.part_declare(
        binary=binary,
        index=1,
        hash="sha256:" + sha256(data).upper(),
        size=10,
        base_url="http://testserver/",
    )
    assert declared.part.hash == sha256(data)


@pytest.mark.django_db(transaction=True)
def test_it_refuses_an_expected_binary_size_that_differs(backend, version, actor):
    binary = new_binary(version, actor, random_bytes(10))
    error = refused(binary, size=10, expected_binary_size=11)
    assert error.field == "expected_binary_size"
    assert error.message == (
        "expected_binary_size is 11 but the binary was declared with size 10; they must match."
    )
    assert binary.parts.count() == 0
    same = uploads.part_declare(
        binary=binary,
        index=1,
        hash="1" * 64,
        size=10,
        expected_binary_size=10,
        base_url="http://testserver/",
    )
    assert same.part.size == 10


@pytest.mark.django_db(transaction=True)
def test_it_adopts_expected_binary_size_when_the_binary_has_none(backend, version, actor):
    binary = services.binary_create(artifact_version=version, target="universal", actor=actor)
    uploads.part_declare(
        binary=binary,
        index=1,
        hash="1" * 64,
        size=5 * MiB,
        expected_binary_size=6 * MiB,
        base_url="http://testserver/",
    )
    binary.refresh_from_db()
    assert binary.size == 6 * MiB
    error = refused(binary, index=2, size=1 * MiB, expected_binary_size=7 * MiB)
    assert error.field == "expected_binary_size"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("state", [State.HASHABLE, State.HASHING, State.SIGNABLE, State.SIGNED])
def test_it_takes_parts_only_while_uploadable(backend, version, actor, state):
    data = random_bytes(10)
    binary = new_binary(version, actor, data)
    path = {
        State.HASHABLE: [State.HASHABLE],
        State.HASHING: [State.HASHABLE, State.HASHING],
        State.SIGNABLE: [State.HASHABLE, State.HASHING, State.SIGNABLE],
        State.SIGNED: [State.HASHABLE, State.HASHING, State.SIGNABLE, State.SIGNED],
    }[state]
    for step in path:
        lifecycle.transition(binary, to=step, actor=Actor.system("test setup"))
    error = refused(binary, hash=sha256(data), size=10)
    assert isinstance(error, Conflict)
    assert error.status == 409
    assert error.code == "invalid_state"
    assert error.message.startswith(f"The binary is {state}; parts can be uploaded only while")
    assert binary.parts.count() == 0
    assert backend.listing() == []


@pytest.mark.django_db(transaction=True)
def test_it_refuses_bytes_once_the_binary_left_uploadable(client, backend, version, actor):
    data = random_bytes(10)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, data)
    lifecycle.transition(binary, to=State.HASHABLE, actor=Actor.system("test setup"))
    if backend.name == "filesystem":
        response = client.put(
            declared.upload_url.removeprefix("http://testserver"),
            data=data,
            content_type="application/octet-stream",
        )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "invalid_state"
        assert "The binary is hashable" in response.json()["error"]["message"]
        assert backend.listing() == []
    assert BinaryPart.objects.get(binary=binary).state == PartState.UPLOADABLE


# --- Through the JSON API, once the parts router is mounted ---------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_declares_and_lists_parts_through_the_api(backend, version, actor, engineer_api):
    data = random_bytes(5 * MiB + 10)
    binary = new_binary(version, actor, data)
    chunks = split(data, 5 * MiB)
    response = engineer_api.put(
        f"/binaries/{binary.prn}/parts/1",
        {"hash": f"sha256:{sha256(chunks[0])}", "size": len(chunks[0])},
    )
    assert response.status_code == 201, response.content
    body = response.json()["binary_part"]
    assert body["index"] == 1
    assert body["state"] == "uploadable"
    assert body["binary_prn"] == binary.prn
    url = body["presigned_upload_url"]
    if backend.name == "filesystem":
        put = engineer_api.client.put(
            urlsplit(url).path,
            data=chunks[0],
            content_type="application/octet-stream",
        )
        assert put.status_code == 200
    else:
        assert put_http(url, chunks[0], sha256(chunks[0])).status_code == 200
    for index, status in ((0, 400), (10_001, 400)):
        bad = engineer_api.put(
            f"/binaries/{binary.prn}/parts/{index}",
            {"hash": sha256(chunks[1]), "size": len(chunks[1])},
        )
        assert bad.status_code == status
        assert "from 1 to 10000" in bad.json()["error"]["message"]
    listed = engineer_api.get(f"/binaries/{binary.prn}/parts")
    assert listed.status_code == 200
    assert [(p["index"], p["state"]) for p in listed.json()["binary_parts"]] == [(1, "valid")]


# --- Two uploads of one part at once ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_makes_a_second_upload_of_a_part_wait_for_the_first(
    backend, version, actor, live_server
):
    """Within one server process too (gthread workers): the threads share the process."""
    import socket
    import time

    data = random_bytes(5 * MiB + 10)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    declared = declare_at(binary, 1, chunks[0], live_server.url + "/")
    url = urlsplit(declared.upload_url)
    partial = backend.root / f"{binary.organization.uuid}/{binary.uuid}.partial"
    with socket.create_connection((url.hostname, url.port), timeout=60) as slow:
        slow.sendall(
            (
                f"PUT {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n"
                f"Content-Length: {len(chunks[0])}\r\n\r\n"
            ).encode()
            + chunks[0][: 2 * MiB]
        )
        deadline = time.monotonic() + 30
        while not partial.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the first request holds the part's range now

        second = put_http(declared.upload_url, chunks[0], declared.part.hash)

        assert second.status_code == 409
        assert second.json()["error"]["code"] == "part_busy"
        assert "being uploaded by another request" in second.json()["error"]["message"]
        slow.sendall(chunks[0][2 * MiB :])
        slow.shutdown(socket.SHUT_WR)
        answer = bytearray()
        while chunk := slow.recv(1 << 16):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), bytes(answer[:200])
    assert BinaryPart.objects.get(pk=declared.part.pk).state == PartState.VALID
    # Once the first is done, the part can be sent again.
    assert put_http(declared.upload_url, chunks[0], declared.part.hash).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_writes_nothing_for_an_upload_superseded_while_it_waited(
    client, backend, version, actor
):
    """A request that passed the URL check, then waited while the part was declared again and
    its new bytes arrived, must not write its old bytes over them."""
    import io

    data = random_bytes(5 * MiB + 10)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    old_bytes = random_bytes(5 * MiB)
    old = declare(binary, 1, old_bytes).part
    old.offset = 0  # what part_receive computed before the part was declared again
    new = declare(binary, 1, chunks[0])
    assert put_bytes(client, new, chunks[0]) == 200
    assert put_bytes(client, declare(binary, 2, chunks[1]), chunks[1]) == 200

    def still_current() -> bool:
        return BinaryPart.objects.filter(pk=old.pk, token=old.token).exists()

    check = backend.receive_part(binary, old, io.BytesIO(old_bytes), len(old_bytes), still_current)

    assert check.state == PartState.UPLOADABLE
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE, binary.last_error
    assert read_back(binary) == data


# --- Two completions at once ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_second_completion_that_lost_the_race_with_409(
    client, backend, version, actor, monkeypatch
):
    """Two clients mark the binary hashable at once. Both find it uploadable; the first
    completes the upload and moves it. On S3 the second then finds the multipart upload gone:
    that used to be a 503 "object store refused"; it is the conflict it is."""
    data = random_bytes(5 * MiB + 99)
    binary = new_binary(version, actor, data)
    for index, chunk in enumerate(split(data, 5 * MiB), start=1):
        assert put_bytes(client, declare(binary, index, chunk), chunk) == 200
    real_refresh = uploads.parts_refresh

    def first_client_wins(target):
        monkeypatch.setattr(uploads, "parts_refresh", real_refresh)
        moves.mark_hashable(binary=type(target).objects.get(pk=target.pk), actor=actor)
        return real_refresh(target)

    monkeypatch.setattr(uploads, "parts_refresh", first_client_wins)
    with pytest.raises(lifecycle.TransitionRefused) as refused:
        moves.mark_hashable(binary=binary, actor=actor)

    assert refused.value.status == 409
    assert refused.value.current == State.SIGNABLE  # the winner's verification ran (eager)
    binary.refresh_from_db()
    assert read_back(binary) == data
    assert binary.events.filter(to_state=State.HASHABLE).count() == 1
