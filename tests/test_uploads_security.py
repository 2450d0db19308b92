"""Bytes that are not what was declared never become a binary's content; upload URLs are
bearer credentials that expire, cannot be altered, and say why they were refused."""

import base64
import hashlib
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from binaries import moves, storage, uploads
from binaries.models import Binary, BinaryEvent, BinaryPart, PartState, State
from peridio_console.core.errors import Conflict
from tests.upload_helpers import (
    MiB,
    declare,
    declare_at,
    new_binary,
    put_bytes,
    put_http,
    random_bytes,
    raw_put,
    sha256,
    split,
    upload_all,
)


def path_of(declared: uploads.DeclaredPart) -> str:
    return urlsplit(declared.upload_url).path


def put_path(client, path: str, body: bytes, **extra):
    return client.put(path, data=body, content_type="application/octet-stream", **extra)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def corrupt(chunk: bytes) -> bytes:
    """The same length, one bit different."""
    return bytes([chunk[0] ^ 1]) + chunk[1:]


# --- A corrupted or short part on the filesystem: refused as it arrives ----------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_marks_a_corrupted_part_invalid_hash(client, backend, version, actor):
    data = random_bytes(5 * MiB + 10)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, chunks[0])
    bad = corrupt(chunks[0])

    response = put_path(client, path_of(declared), bad)

    assert response.status_code == 422
    part = response.json()["binary_part"]
    assert part["state"] == "invalid_hash"
    assert part["last_error"] == (
        f"Part 1 was declared as sha256:{sha256(chunks[0])} but the bytes that arrived are "
        f"sha256:{sha256(bad)}."
    )
    assert BinaryPart.objects.get(pk=declared.part.pk).state == PartState.INVALID_HASH
    # The same URL takes the right bytes afterwards.
    assert put_path(client, path_of(declared), chunks[0]).status_code == 200
    assert BinaryPart.objects.get(pk=declared.part.pk).state == PartState.VALID


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
@pytest.mark.parametrize("sent", [5 * MiB - 1, 5 * MiB + 1, 0])
def test_it_marks_a_part_with_the_wrong_content_length_invalid_size(
    client, backend, version, actor, sent
):
    data = random_bytes(5 * MiB + 10)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, data[: 5 * MiB])
    body = (data * 2)[:sent]

    response = put_path(client, path_of(declared), body, CONTENT_LENGTH=str(sent))

    assert response.status_code == 422
    part = response.json()["binary_part"]
    assert part["state"] == "invalid_size"
    assert part["last_error"] == (
        f"Part 1 was declared as {5 * MiB} bytes but the request carries {sent} (Content-Length)."
    )
    assert backend.listing() == []  # refused before a byte was written


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_asks_for_a_content_length(client, backend, version, actor, live_server):
    data = random_bytes(10)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, data)

    response = client.put(path_of(declared))  # the test client sends no Content-Length
    assert response.status_code == 411
    assert error_of(response) == {
        "code": "length_required",
        "message": "Send the part with a Content-Length header.",
        "field": None,
    }
    # Over a real socket too, with a body and no length.
    status, body = raw_put(live_server.url + path_of(declared), data, content_length=None)
    assert status == 411
    assert body["error"]["code"] == "length_required"
    # A Content-Length that is not a number is no length at all.
    for length in ("ten", "-10", "1e1", "\u00b2", " 10"):
        response = put_path(client, path_of(declared), data, CONTENT_LENGTH=length)
        assert response.status_code == 411, length
    assert BinaryPart.objects.get(pk=declared.part.pk).state == PartState.UPLOADABLE


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_marks_a_body_shorter_than_its_content_length_invalid_size(
    backend, version, actor, live_server
):
    data = random_bytes(5 * MiB + 10)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    declared = declare_at(binary, 1, chunks[0], live_server.url + "/")

    # The client says 5 MiB and dies after 3 MiB.
    status, body = raw_put(declared.upload_url, chunks[0][: 3 * MiB], content_length=5 * MiB)

    assert status == 422
    assert body["binary_part"]["state"] == "invalid_size"
    assert body["binary_part"]["last_error"] == (
        f"Part 1 was declared as {5 * MiB} bytes but {3 * MiB} arrived."
    )
    part = BinaryPart.objects.get(pk=declared.part.pk)
    assert part.state == PartState.INVALID_SIZE
    # Sent again in full to the same URL, it is valid.
    assert put_http(declared.upload_url, chunks[0], part.hash).status_code == 200
    part.refresh_from_db()
    assert part.state == PartState.VALID


# --- Filesystem upload URLs: expired, tampered -------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_refuses_an_expired_upload_url(client, backend, version, actor, settings):
    data = random_bytes(10)
    binary = new_binary(version, actor, data)
    settings.UPLOAD_URL_TTL_SECONDS = -1
    declared = declare(binary, 1, data)

    response = put_path(client, path_of(declared), data)

    assert response.status_code == 403
    assert error_of(response) == {
        "code": "url_expired",
        "message": "This upload URL has expired; declare the part again for a new URL.",
        "field": None,
    }
    assert BinaryPart.objects.get(pk=declared.part.pk).state == PartState.UPLOADABLE
    assert backend.listing() == []
    # Declared again, the part gets a URL that works.
    settings.UPLOAD_URL_TTL_SECONDS = 60
    assert put_bytes(client, declare(binary, 1, data), data) == 200


def tampered_paths(declared: uploads.DeclaredPart, other: uploads.DeclaredPart) -> list[str]:
    """The URL altered in the ways an attacker (or a mangling proxy) might."""
    path = path_of(declared)
    token = path.rsplit("/", 1)[1]
    payload, signature = token.rsplit(":", 1)
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other_payload = path_of(other).rsplit("/", 1)[1].rsplit(":", 1)[0]
    prefix = path.rsplit("/", 1)[0]
    return [
        f"{prefix}/{payload}:{flipped}",  # signature altered
        f"{prefix}/{other_payload}:{signature}",  # another part's payload, this signature
        f"{prefix}/{payload}",  # signature removed
        f"{prefix}/{payload[:-2]}xx:{signature}",  # payload altered
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_refuses_a_tampered_upload_url(client, backend, version, actor):
    data = random_bytes(5 * MiB + 10)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, chunks[0])
    other = declare(binary, 2, chunks[1])

    for path in tampered_paths(declared, other):
        response = put_path(client, path, chunks[1])
        assert response.status_code == 403, path
        assert error_of(response) == {
            "code": "url_tampered",
            "message": "This upload URL was altered or is not ours; declare the part again for "
            "a new URL.",
            "field": None,
        }
    assert [p.state for p in binary.parts.all()] == [PartState.UPLOADABLE] * 2
    assert backend.listing() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_refuses_a_url_signed_with_another_key(client, backend, version, actor, settings):
    data = random_bytes(10)
    binary = new_binary(version, actor, data)
    settings.SECRET_KEY = "another deployment's secret key, long enough to be plausible"
    forged = declare(binary, 1, data)
    settings.SECRET_KEY = settings.SECRET_KEY[::-1]
    response = put_path(client, path_of(forged), data)
    assert response.status_code == 403
    assert error_of(response)["code"] == "url_tampered"


# --- S3: the presigned URL binds the part's checksum ------------------------------------------


def sigv4_query_signature(url: str, headers: dict[str, str]) -> str:
    """What an S3 server computes for a presigned URL given the headers a request carries
    (the test store's secret key is "testing")."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "X-Amz-Signature"]
    fields = dict(query)
    key_id, _, region, _, _ = fields["X-Amz-Credential"].split("/")
    auth = S3SigV4QueryAuth(
        Credentials(key_id, "testing"), "s3", region, expires=int(fields["X-Amz-Expires"])
    )
    request = AWSRequest(
        method="PUT",
        url=urlunsplit(
            (
                parts.scheme,
                parts.netloc,
                parts.path,
                urlencode(query, quote_via=quote, safe="-_.~"),
                "",
            )
        ),
        headers=headers,
    )
    request.context["timestamp"] = fields["X-Amz-Date"]
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)


def b64(digest_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(digest_hex)).decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_it_signs_the_parts_checksum_into_the_presigned_url(backend, version, actor, settings):
    data = random_bytes(5 * MiB + 10)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, chunks[0])
    url = declared.upload_url
    query = dict(parse_qsl(urlsplit(url).query))

    assert query["partNumber"] == "1"
    assert query["uploadId"] == Binary.objects.get(pk=binary.pk).upload_id
    assert query["X-Amz-SignedHeaders"].split(";") == [
        "content-length",
        "host",
        "x-amz-checksum-sha256",
    ]
    # The checksum travels as a signed header, not in the URL: the URL alone uploads nothing.
    assert not [name for name in query if "checksum" in name.lower()]
    assert b64(sha256(chunks[0])) not in [*query.values()]
    assert 0 < int(query["X-Amz-Expires"]) <= settings.UPLOAD_URL_TTL_SECONDS

    # Only the declared checksum and size make the signature S3 checks come out right; S3 then
    # refuses (BadDigest) a body whose SHA-256 is not the signed header's.
    declared_headers = {"content-length": str(len(chunks[0])), **checksum(sha256(chunks[0]))}
    assert sigv4_query_signature(url, declared_headers) == query["X-Amz-Signature"]
    bad = corrupt(chunks[0])
    for headers in (
        {**declared_headers, **checksum(sha256(bad))},
        {**declared_headers, "content-length": str(len(chunks[0]) - 1)},
    ):
        assert sigv4_query_signature(url, headers) != query["X-Amz-Signature"]


def checksum(digest_hex: str) -> dict[str, str]:
    return {"x-amz-checksum-sha256": b64(digest_hex)}


# --- A corrupted part that the store accepted never becomes content ----------------------------


@pytest.mark.django_db(transaction=True)
def test_it_catches_a_corrupted_part_the_store_accepted_in_verification(
    client, backend, version, actor
):
    data = random_bytes(2 * 5 * MiB + 10)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    for index, chunk in enumerate(chunks, start=1):
        declared = declare(binary, index, chunk)
        if index == 2 and backend.name == "s3":
            # moto takes any bytes (a real S3 would answer BadDigest): the worst case.
            response = put_http(declared.upload_url, corrupt(chunk), declared.part.hash)
            assert response.status_code == 200
        else:
            assert put_bytes(client, declared, chunk) == 200
    if backend.name == "filesystem":
        # Bit rot (or a meddler) after the part was checked on arrival.
        [partial] = [backend.root / k for k in backend.listing() if k.endswith(".partial")]
        with open(partial, "r+b") as f:
            f.seek(5 * MiB)
            first = f.read(1)
            f.seek(5 * MiB)
            f.write(bytes([first[0] ^ 1]))
    assert [p.state for p in uploads.parts_refresh(binary)] == [PartState.VALID] * 3

    moves.mark_hashable(binary=binary, actor=actor)  # verification runs eagerly in tests

    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    stored = bytearray(data)
    stored[5 * MiB] ^= 1
    assert binary.last_error == (
        f"SHA-256 mismatch: declared sha256:{sha256(data)}, stored content is "
        f"sha256:{hashlib.sha256(stored).hexdigest()} ({len(data)} bytes)."
    )
    assert binary.verified_hash is None
    assert binary.parts.count() == 0
    assert binary.upload_id is None
    assert backend.listing() == []
    history = [(e.from_state, e.to_state) for e in binary.events.all()]
    assert history[-3:] == [
        ("uploadable", "hashable"),
        ("hashable", "hashing"),
        ("hashing", "uploadable"),
    ]
    # And the client can start over.
    upload_all(client, binary, data)
    moves.mark_hashable(binary=binary, actor=actor)
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_it_marks_a_short_part_in_the_store_invalid_size(backend, version, actor):
    data = random_bytes(5 * MiB + 10)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    declared = declare(binary, 1, chunks[0])
    response = put_http(declared.upload_url, chunks[0][:MiB], declared.part.hash)
    assert response.status_code == 200  # moto checks neither signature nor length

    parts = uploads.parts_refresh(binary)

    assert parts[0].state == PartState.INVALID_SIZE
    assert parts[0].last_error == (
        f"Part 1 was declared as {5 * MiB} bytes but the store holds {MiB}."
    )


# --- Hashable with a missing or invalid part: 409, and nothing changed -------------------------


def snapshot(binary, backend) -> tuple:
    row = Binary.objects.get(pk=binary.pk)
    parts = [(p.index, p.state, p.hash, p.size, p.token) for p in row.parts.all()]
    return (
        row.state,
        row.updated_at,
        row.upload_id,
        row.last_error,
        BinaryEvent.objects.filter(binary=binary).count(),
        parts,
        backend.listing(),
    )


# moto keeps no part checksums, so a corrupted part on S3 is caught by verification instead:
# test_it_catches_a_corrupted_part_the_store_accepted_in_verification.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("flaw", "backend"),
    [
        *[(flaw, "filesystem") for flaw in ("missing", "corrupted", "short", "not sent")],
        *[(flaw, "s3") for flaw in ("missing", "short", "not sent")],
    ],
    indirect=["backend"],
)
def test_it_refuses_hashable_with_a_missing_or_invalid_part(
    client, backend, version, actor, engineer_api, flaw, live_server
):
    data = random_bytes(3 * 5 * MiB)
    chunks = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    for index, chunk in enumerate(chunks, start=1):
        if index == 2 and flaw == "missing":
            continue
        declared = declare_at(binary, index, chunk, live_server.url + "/")
        if index != 2:
            body = chunk
        elif flaw == "corrupted":
            body = corrupt(chunk)
        elif flaw == "short":
            body = chunk[:MiB]
        else:
            continue
        put_http(declared.upload_url, body, declared.part.hash)
    uploads.parts_refresh(Binary.objects.get(pk=binary.pk))
    before = snapshot(binary, backend)

    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})

    assert response.status_code == 409, response.content
    error = error_of(response)
    assert error["code"] == "upload_incomplete"
    expected = {
        "missing": "missing parts 2",
        "corrupted": "parts 2 invalid hash",
        "short": "parts 2 invalid size",
        "not sent": "parts 2 not uploaded",
    }[flaw]
    assert error["message"] == f"The upload is not complete: {expected}."
    assert snapshot(binary, backend) == before
    with pytest.raises(Conflict):
        moves.mark_hashable(binary=binary, actor=actor)
    assert snapshot(binary, backend) == before
    assert storage.get().exists(binary) is False
