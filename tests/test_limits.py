"""Request size limits: every API operation that takes a body refuses one over the limit with
a 413 in the one error shape (and the console's forms refuse one too); the part upload
endpoint is bounded by the part's declared size instead, and never writes past its range."""

import io
from typing import Any

import httpx
import pytest
from django.test import Client

from binaries.models import Binary, BinaryPart, PartState
from binaries.storage import tokens
from tests.upload_helpers import MiB, declare, declare_at, new_binary, random_bytes, raw_put, split
from tests.world_helpers import World, populate

LIMIT = 2048


@pytest.fixture
def world(db) -> World:
    return populate("Limits")


def body_operations(client: Client) -> list[tuple[str, str]]:
    document = client.get("/v1/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]


def oversized(size: int) -> bytes:
    """Valid JSON of `size` bytes, so only its size is wrong."""
    head = b'{"description": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def rows() -> list[tuple]:
    from binaries.models import Artifact, ArtifactVersion, SigningKey

    return [
        *Binary.objects.values_list("uuid", "state", "description").order_by("pk"),
        *Artifact.objects.values_list("uuid", "name", "description").order_by("pk"),
        *ArtifactVersion.objects.values_list("uuid", "description").order_by("pk"),
        *SigningKey.objects.values_list("uuid", "revoked_at").order_by("pk"),
    ]


def test_it_refuses_an_oversized_body_on_every_api_operation_that_takes_one(
    client, world, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    operations = body_operations(client)
    assert {m for m, _ in operations} >= {"POST", "PUT", "PATCH", "DELETE"}
    before = rows()
    urls = [
        (method, path.replace("{prn}", world.prn_for(_kind(path))).replace("{index}", "1"))
        for method, path in operations
    ]
    for method, url in urls:
        response = world.api.client.generic(
            method, url, oversized(LIMIT + 1), content_type="application/json"
        )
        assert response.status_code == 413, (method, url, response.content)
        assert response.json()["error"] == {
            "code": "too_large",
            "message": f"The request body is larger than the {LIMIT} bytes this server accepts.",
            "field": None,
        }
    assert rows() == before  # nothing was written
    # At the limit, the same operations get past the size check.
    for method, url in urls:
        fits = world.api.client.generic(
            method, url, oversized(LIMIT), content_type="application/json"
        )
        assert fits.status_code != 413, (method, url)


def _kind(path: str) -> str:
    return {
        "artifacts": "artifact",
        "artifact_versions": "artifact_version",
        "binaries": "binary",
        "signing_keys": "signing_key",
        "binary_signatures": "binary_signature",
    }[path.split("/")[2]]


@pytest.mark.django_db(transaction=True)
def test_it_refuses_an_oversized_body_over_real_http_without_reading_it(live_server, settings):
    """The default limit (MAX_REQUEST_BODY_BYTES, 4 MiB) over a socket: 413 as soon as the
    headers say the body is too long."""
    from tests.api_helpers import ApiClient
    from tests.factories import MembershipFactory

    membership = MembershipFactory()
    secret = ApiClient.for_membership(membership).secret
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert limit == 4 * MiB
    url = live_server.url.replace("localhost", "127.0.0.1") + "/v1/artifacts"
    with httpx.Client(timeout=60) as http:
        response = http.post(
            url,
            content=oversized(limit + 1),
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    from binaries.models import Artifact

    assert not Artifact.objects.exists()


def test_it_refuses_oversized_console_forms(client, world, settings):
    """Console forms are bodies too: over the limit they are refused (Django answers 400 for
    a body it will not parse) and nothing is created."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    client.force_login(world.admin_membership.user)
    response = client.post("/artifacts/new", {"name": "big", "description": "x" * (LIMIT + 1)})
    assert response.status_code in (400, 413)
    from binaries.models import Artifact

    assert not Artifact.objects.filter(name="big").exists()


# --- The upload endpoint: bounded by the part's declared size ---------------------------------


def _partial_bytes(backend: Any, binary: Binary, start: int, length: int) -> bytes:
    path = backend._partial(binary)
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(length)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_writes_nothing_of_a_body_longer_than_its_part(backend, version, actor, live_server):
    data = random_bytes(5 * MiB + 4000)
    first, second = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    base = live_server.url.replace("localhost", "127.0.0.1") + "/"
    part_one = declare_at(binary, 1, first, base)
    part_two = declare_at(binary, 2, second, base)
    # Part 2 sits right after part 1 in the object being assembled.
    status, _ = raw_put(part_two.upload_url, second, content_length=len(second))
    assert status == 200

    # Part 1 with 4,000 bytes too many, honestly announced: refused before a byte is read.
    longer = first + b"\xff" * 4000
    status, body = raw_put(part_one.upload_url, longer, content_length=len(longer))
    assert status == 422
    assert body["binary_part"]["state"] == PartState.INVALID_SIZE
    assert _partial_bytes(backend, binary, 5 * MiB, len(second)) == second
    assert set(_partial_bytes(backend, binary, 0, 5 * MiB)) <= {0}  # nothing of part 1 yet

    # Part 1 announced at its size with 4,000 more bytes behind it: only its range is written.
    status, body = raw_put(part_one.upload_url, longer, content_length=len(first))
    assert status == 200
    assert body["binary_part"]["state"] == PartState.VALID
    assert _partial_bytes(backend, binary, 0, len(data)) == data
    assert BinaryPart.objects.get(binary=binary, index=2).state == PartState.VALID


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_never_writes_past_a_parts_range_even_when_handed_more(backend, version, actor):
    """The storage layer's own guard: a stream longer than the part (the view checks the
    length first; this is the second line) is hashed whole but written only within range."""
    data = random_bytes(5 * MiB + 100)
    first, second = split(data, 5 * MiB)
    binary = new_binary(version, actor, data)
    part_one = declare(binary, 1, first).part
    declare(binary, 2, second)
    payload = tokens.read_part_token(declare(binary, 2, second).upload_url.rsplit("/", 1)[1])
    from binaries import uploads

    assert uploads.part_receive(
        token_payload=payload, stream=io.BytesIO(second), length=len(second)
    ).state == (PartState.VALID)
    part_one.offset = 0
    longer = first + b"\xee" * 100
    check = backend.receive_part(binary, part_one, io.BytesIO(longer), len(longer))
    assert check.state == PartState.INVALID_SIZE
    assert check.message == f"Part 1 was declared as {5 * MiB} bytes but {len(longer)} arrived."
    assert _partial_bytes(backend, binary, 5 * MiB, 100) == second  # the neighbour is intact
