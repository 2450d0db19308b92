"""Signed means immutable: once a binary leaves uploadable, no byte of its content changes
through any upload URL, however a part write and the completion interleave.

Found by an adversarial review: a second PUT to a valid part's URL that stalled mid-body while
the binary was marked hashable, verified and signed went on writing into the object that
completion had renamed into place; downloads then served other bytes under the verified ETag.
"""

import hashlib
import io

import pytest

from binaries import moves, uploads
from binaries.models import BinaryPart, PartState, State
from binaries.storage import PartBusy, filesystem, tokens
from peridio_console.core.errors import Conflict
from tests.upload_helpers import (
    declare,
    declare_at,
    fresh,
    new_binary,
    put_bytes,
    put_http,
    random_bytes,
    read_back,
    sha256,
)

MiB = 1024 * 1024


def _stored_matches_verification(binary) -> None:
    binary.refresh_from_db()
    if binary.state in (State.SIGNABLE, State.SIGNED):
        assert hashlib.sha256(read_back(binary)).hexdigest() == binary.verified_hash


class StallThenFinish(io.RawIOBase):
    """A request body that sends `first`, lets `meanwhile` run (the stall), then sends
    `rest`: a part write interleaved with whatever happens to the binary in between."""

    def __init__(self, first: bytes, rest: bytes, meanwhile):
        self.chunks = [first, rest]
        self.meanwhile = meanwhile
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        if self.sent == 1:
            self.meanwhile()
        if self.sent >= len(self.chunks):
            return b""
        self.sent += 1
        return self.chunks[self.sent - 1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_refuses_to_complete_while_a_part_write_is_under_way(client, backend, version, actor):
    content = random_bytes(3 * MiB)
    binary = new_binary(version, actor, content)
    declared = declare(binary, 1, content)
    assert put_bytes(client, declared, content) == 200
    payload = tokens.read_part_token(declared.upload_url.rsplit("/", 1)[1])
    other = random_bytes(2 * MiB)
    attempts: list[object] = []

    def mark_hashable_meanwhile() -> None:
        try:
            attempts.append(moves.mark_hashable(binary=fresh(binary), actor=actor))
        except (Conflict, PartBusy) as exc:  # what the client's PATCH would answer
            attempts.append(exc)

    body = StallThenFinish(content[:MiB], other, mark_hashable_meanwhile)
    part = uploads.part_receive(token_payload=payload, stream=body, length=len(content))

    [attempt] = attempts
    assert isinstance(attempt, PartBusy), attempt
    assert "still being uploaded" in str(attempt)
    assert part.state == PartState.INVALID_HASH  # the write that lost is recorded as what it was
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    assert binary.verified_hash is None
    # The client sends the part again and completes: the content is what was declared.
    assert put_bytes(client, declare(fresh(binary), 1, content), content) == 200
    moves.mark_hashable(binary=fresh(binary), actor=actor)  # verified eagerly in tests
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert read_back(binary) == content


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_writes_nothing_when_the_upload_completes_before_the_write_takes_its_lock(
    client, backend, version, actor, monkeypatch
):
    """The write opened the file being assembled; completion renamed it into place before the
    write held its range: the write finds its file is the object now, and stops."""
    content = random_bytes(3 * MiB)
    binary = new_binary(version, actor, content)
    declared = declare(binary, 1, content)
    assert put_bytes(client, declared, content) == 200
    payload = tokens.read_part_token(declared.upload_url.rsplit("/", 1)[1])
    real_lock = filesystem._lock_or_busy
    completed: list[bool] = []

    def complete_first(fd: int, start: int, length: int, busy: str) -> None:
        if not completed:
            completed.append(True)
            moves.mark_hashable(binary=fresh(binary), actor=actor)  # verified eagerly
        real_lock(fd, start, length, busy)

    monkeypatch.setattr(filesystem, "_lock_or_busy", complete_first)
    with pytest.raises(Conflict) as refused:
        uploads.part_receive(
            token_payload=payload,
            stream=io.BytesIO(random_bytes(len(content))),
            length=len(content),
        )
    monkeypatch.undo()
    assert refused.value.code == "invalid_state"
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert read_back(binary) == content
    assert BinaryPart.objects.get(binary=binary).state == PartState.VALID
    _stored_matches_verification(binary)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_refuses_a_part_write_once_the_object_is_complete(client, backend, version, actor):
    """A write that passed the state check just before completion, and opens its file after:
    the object exists, so the write takes no bytes."""
    content = random_bytes(3 * MiB)
    binary = new_binary(version, actor, content)
    declared = declare(binary, 1, content)
    assert put_bytes(client, declared, content) == 200
    payload = tokens.read_part_token(declared.upload_url.rsplit("/", 1)[1])

    part = BinaryPart.objects.select_related("binary__organization").get(binary=binary)
    part.offset = 0
    moves.mark_hashable(binary=fresh(binary), actor=actor)
    check = backend.receive_part(
        part.binary, part, io.BytesIO(random_bytes(len(content))), len(content)
    )
    assert (check.state, check.message) == (PartState.UPLOADABLE, "superseded")
    with pytest.raises(Conflict):
        uploads.part_receive(token_payload=payload, stream=io.BytesIO(content), length=len(content))
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert read_back(binary) == content
    _stored_matches_verification(binary)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_it_keeps_the_object_when_a_part_arrives_after_completion_on_s3(backend, version, actor):
    """On S3 the store itself fences: once CompleteMultipartUpload has run, an UploadPart to
    the finished upload is refused, and the object keeps the bytes that were verified."""
    content = random_bytes(6 * MiB)
    first, second = content[: 5 * MiB], content[5 * MiB :]
    binary = new_binary(version, actor, content)
    one = declare_at(binary, 1, first, "http://testserver/")
    two = declare_at(binary, 2, second, "http://testserver/")
    assert put_http(one.upload_url, first, sha256(first)).status_code == 200
    assert put_http(two.upload_url, second, sha256(second)).status_code == 200
    moves.mark_hashable(binary=fresh(binary), actor=actor)  # verified eagerly
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE

    late = put_http(one.upload_url, first, sha256(first))
    assert late.status_code >= 400, late.text
    assert read_back(binary) == content
    _stored_matches_verification(binary)
