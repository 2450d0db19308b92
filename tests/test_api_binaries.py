import json

import pytest

from binaries.models import Binary, BinaryEvent, State
from tests.api_helpers import error_of
from tests.factories import ArtifactVersionFactory, BinaryFactory, binary_in_state
from tests.upload_helpers import declare, put_bytes, random_bytes, sha256

HEX = "ab" * 32
HASH = f"sha256:{HEX}"
MISSING_UUID = "00000000-0000-4000-8000-000000000000"


def _create(api, version, **fields):
    body = {"artifact_version_prn": version.prn, "target": "arm-linux-gnueabihf", **fields}
    return api.post("/binaries", body)


# --- Create -----------------------------------------------------------------------------


def test_it_creates_a_binary(engineer_api, version):
    response = _create(
        engineer_api,
        version,
        hash=HASH,
        size=104857600,
        description="Release build",
        custom_metadata={"git_commit": "abc123def", "features": ["wifi"]},
    )
    assert response.status_code == 201
    data = response.json()["binary"]
    binary = Binary.objects.get()
    assert data == {
        "prn": binary.prn,
        "organization_prn": engineer_api.organization.prn,
        "artifact_version_prn": version.prn,
        "target": "arm-linux-gnueabihf",
        "hash": HASH,
        "size": 104857600,
        "state": "uploadable",
        "custom_metadata": {"git_commit": "abc123def", "features": ["wifi"]},
        "description": "Release build",
        "last_error": "",
        "bytes_hashed": 0,
        "signatures": [],
        "signature_status": "unsigned",
        "integrity_failed_at": None,
        "created_at": data["created_at"],
        "inserted_at": data["created_at"],
        "updated_at": data["updated_at"],
    }
    event = BinaryEvent.objects.get(binary=binary)
    assert (event.from_state, event.to_state) == ("", State.UPLOADABLE)


def test_it_creates_a_binary_without_size_or_hash(engineer_api, version):
    # The guide's multi-architecture loop creates binaries with a bare hash and no size.
    response = _create(engineer_api, version, target="aarch64-linux-gnu", hash=HEX.upper())
    assert response.status_code == 201
    data = response.json()["binary"]
    assert (data["hash"], data["size"]) == (HASH, None)
    assert _create(engineer_api, version, target="universal").json()["binary"]["hash"] is None


def test_it_refuses_a_second_live_binary_for_a_target(engineer_api, version):
    first = BinaryFactory(artifact_version=version, target="arm-linux-gnueabihf")
    response = _create(engineer_api, version)
    assert response.status_code == 409
    error = error_of(response)
    assert (error["code"], error["field"]) == ("target_taken", "target")
    assert first.prn in error["message"]


def test_it_allows_a_target_again_once_its_binary_is_destroyed(engineer_api, version):
    binary_in_state("destroyed", artifact_version=version, target="arm-linux-gnueabihf")
    assert _create(engineer_api, version).status_code == 201


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"target": "arm linux"}, "target", "letters, digits"),
        ({"target": ""}, "target", "1-128 characters"),
        ({"target": None}, "target", "target must be text; got null."),
        ({"hash": "sha256:abc123..."}, "hash", "sha256:<64 hex digits>"),
        ({"hash": 12}, "hash", "hash must be text; got 12."),
        ({"size": -1}, "size", "from 0 to"),
        ({"size": 10**30}, "size", "from 0 to"),
        ({"size": 1.5}, "size", "size must be a whole number; got 1.5."),
        ({"size": "100"}, "size", "size must be a whole number; got '100'."),
        ({"size": True}, "size", "size must be a whole number; got true."),
        ({"description": "d" * 257}, "description", "at most 256 characters; got 257"),
        ({"custom_metadata": "x"}, "custom_metadata", "a JSON object"),
        ({"custom_metadata": {"x": 1}, "extra": 1}, "extra", "is not a field of this request"),
    ],
)
def test_it_explains_invalid_binaries(engineer_api, version, fields, field, words):
    response = _create(engineer_api, version, **fields)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["field"] == field
    assert words in error["message"]
    assert not Binary.objects.exists()


def test_it_needs_an_artifact_version_and_a_target(engineer_api):
    response = engineer_api.post("/binaries", {"hash": HASH})
    assert response.status_code == 400
    assert error_of(response)["message"] == "artifact_version_prn is required."


def test_it_answers_404_for_a_missing_artifact_version(engineer_api):
    prn = f"{engineer_api.organization.prn}:artifact_version:{MISSING_UUID}"
    response = engineer_api.post("/binaries", {"artifact_version_prn": prn, "target": "x"})
    assert response.status_code == 404
    assert error_of(response)["field"] == "artifact_version_prn"


def test_it_answers_400_for_a_malformed_artifact_version_prn(engineer_api):
    response = engineer_api.post(
        "/binaries", {"artifact_version_prn": "prn:1:artifact-version:...", "target": "x"}
    )
    assert response.status_code == 400
    assert error_of(response)["field"] == "artifact_version_prn"


BAD_BODIES = [
    b"[1, 2]",
    b'"text"',
    b"null",
    b"42",
    b"{",
    b"{'single': 'quotes'}",
    b"\xff\xfe{}",
    b'{"target": "\\ud800"}',
    b'{"target": "a\\u0000b"}',
    b'{"custom_metadata": {"a\\u0000": 1}}',
    b'{"size": NaN}',
    b'{"size": Infinity}',
    b'{"size": 1e999}',
    b'{"size": ' + b"9" * 5000 + b"}",
    b'{"custom_metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"artifact_version_prn": ["x"], "target": {"a": 1}}',
    b'{"artifact_version_prn": "prn:1:' + "é".encode() * 10 + b'", "target": "x"}',
    b"\xef\xbb\xbf{}",
    b"",
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_it_answers_bad_bodies_with_400_never_500(engineer_api, body, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1 << 20
    response = engineer_api.client.post(
        "/v1/binaries", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400, response.content
    assert error_of(response)["code"] == "invalid"


def test_it_refuses_a_body_over_the_limit_with_413(engineer_api, version, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    metadata = {"blob": "x" * 4096}
    response = _create(engineer_api, version, custom_metadata=metadata)
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "too_large"
    assert "2048 bytes" in error["message"]


def test_it_accepts_json_whatever_the_content_type(engineer_api, version):
    content_types = ("application/x-www-form-urlencoded", "text/plain", "", "application/json")
    for n, content_type in enumerate(content_types):
        body = json.dumps({"artifact_version_prn": version.prn, "target": f"t{n}"})
        response = engineer_api.client.post("/v1/binaries", body, content_type=content_type)
        assert response.status_code == 201, (content_type, response.content)
    assert Binary.objects.count() == len(content_types)


# --- Read -------------------------------------------------------------------------------


def test_it_gets_a_binary(engineer_api, version):
    binary = binary_in_state("signed", artifact_version=version)
    response = engineer_api.get(f"/binaries/{binary.prn}")
    assert response.status_code == 200
    data = response.json()["binary"]
    assert (data["prn"], data["state"], data["hash"]) == (
        binary.prn,
        "signed",
        "sha256:" + "a" * 64,
    )


def test_it_answers_404_for_a_missing_binary(engineer_api):
    prn = f"{engineer_api.organization.prn}:binary:{MISSING_UUID}"
    response = engineer_api.get(f"/binaries/{prn}")
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "not_found",
        "field": "prn",
        "message": f"No binary {prn} in this organization.",
    }


def test_it_lists_binaries_with_filters(engineer_api, version):
    other_version = ArtifactVersionFactory(artifact=version.artifact)
    arm = BinaryFactory(artifact_version=version, target="arm-linux-gnueabihf")
    x86 = BinaryFactory(artifact_version=version, target="x86_64-linux-gnu")
    elsewhere = BinaryFactory(artifact_version=other_version, target="arm-linux-gnueabihf")
    signable = binary_in_state("signable", artifact_version=other_version, target="universal")

    def prns(**params):
        response = engineer_api.get("/binaries", **params)
        assert response.status_code == 200, response.content
        return [b["prn"] for b in response.json()["binaries"]]

    assert prns() == [arm.prn, x86.prn, elsewhere.prn, signable.prn]
    assert prns(artifact_version_prn=version.prn) == [arm.prn, x86.prn]
    assert prns(target="arm-linux-gnueabihf") == [arm.prn, elsewhere.prn]
    assert prns(artifact_version_prn=version.prn, target="arm-linux-gnueabihf") == [arm.prn]
    assert prns(state="signable") == [signable.prn]
    assert prns(order="desc") == [signable.prn, elsewhere.prn, x86.prn, arm.prn]


def test_it_explains_bad_list_parameters(engineer_api):
    cases = [
        ({"limit": 0}, "limit", "limit must be at least 1; got '0'."),
        ({"limit": 101}, "limit", "limit must be at most 100; got '101'."),
        ({"limit": "ten"}, "limit", "limit must be a whole number; got 'ten'."),
        ({"limit": "9" * 400}, "limit", "limit must be at most 100"),
        ({"order": "newest"}, "order", "order must be 'asc' or 'desc'; got 'newest'."),
        ({"state": "lost"}, "state", "state must be 'uploadable', 'hashable'"),
        ({"artifact_version_prn": "nope"}, "artifact_version_prn", "is not a PRN"),
        ({"target": "a\x00b"}, "target", "NUL character"),
    ]
    for params, field, words in cases:
        response = engineer_api.get("/binaries", **params)
        assert response.status_code == 400, (params, response.content)
        error = error_of(response)
        assert error["field"] == field, params
        assert words in error["message"], (params, error)


# --- Update -----------------------------------------------------------------------------


def test_it_updates_descriptive_fields(engineer_api, version):
    binary = binary_in_state("signed", artifact_version=version, description="old")
    response = engineer_api.patch(
        f"/binaries/{binary.prn}", {"description": "new", "custom_metadata": {"k": "v"}}
    )
    assert response.status_code == 200
    data = response.json()["binary"]
    assert (data["description"], data["custom_metadata"], data["state"]) == (
        "new",
        {"k": "v"},
        "signed",
    )


def test_it_changes_hash_and_size_while_uploadable(engineer_api, version):
    binary = BinaryFactory(artifact_version=version, hash=None, size=None)
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"hash": HASH, "size": 10})
    assert response.status_code == 200
    assert (response.json()["binary"]["hash"], response.json()["binary"]["size"]) == (HASH, 10)


def test_it_refuses_hash_changes_after_upload(engineer_api, version):
    binary = binary_in_state("signable", artifact_version=version)
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"hash": HASH})
    assert response.status_code == 409
    error = error_of(response)
    assert error["field"] == "hash"
    assert "only change while it is uploadable" in error["message"]


def test_it_moves_a_binary_to_hashable_when_its_upload_is_complete(engineer_api, version, client):
    data = random_bytes(1000)
    created = _create(engineer_api, version, hash=sha256(data), size=len(data))
    binary = Binary.objects.get(uuid=created.json()["binary"]["prn"].rsplit(":", 1)[1])
    assert put_bytes(client, declare(binary, 1, data), data) == 200
    response = engineer_api.patch(
        f"/binaries/{binary.prn}", {"state": "hashable", "reason": "CI upload done"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["binary"]["state"] == "hashable"
    event = BinaryEvent.objects.filter(binary=binary).last()
    assert (event.from_state, event.to_state, event.reason) == (
        "uploadable",
        "hashable",
        "CI upload done",
    )


def test_it_refuses_hashable_before_the_upload(engineer_api, version):
    binary = BinaryFactory(artifact_version=version)
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashable"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "upload_incomplete"


def test_it_resets_a_binary_to_uploadable(engineer_api, version):
    binary = binary_in_state("signable", artifact_version=version)
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "uploadable"})
    assert response.status_code == 200
    assert response.json()["binary"]["state"] == "uploadable"


def test_it_refuses_an_impossible_move_before_changing_anything(engineer_api, version):
    binary = BinaryFactory(artifact_version=version, description="kept")
    response = engineer_api.patch(
        f"/binaries/{binary.prn}", {"state": "signed", "description": "changed"}
    )
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "invalid_state_transition"
    assert error["message"] == (
        "The binary is uploadable and cannot move to signed; "
        "from uploadable it can move to: destroyed, hashable."
    )
    binary.refresh_from_db()
    assert (binary.state, binary.description) == ("uploadable", "kept")


def test_it_treats_asking_for_hashing_while_hashing_as_a_no_op(engineer_api, version):
    binary = binary_in_state("hashing", artifact_version=version)
    response = engineer_api.patch(f"/binaries/{binary.prn}", {"state": "hashing"})
    assert response.status_code == 200
    assert response.json()["binary"]["state"] == "hashing"


def test_it_explains_bad_state_requests(engineer_api, version):
    binary = BinaryFactory(artifact_version=version)
    for body, field in (
        ({"state": "done"}, "state"),
        ({"state": 3}, "state"),
        ({"state": None}, "state"),
        ({"reason": "why"}, "reason"),
        ({"state": "hashable", "reason": "r" * 1001}, "reason"),
    ):
        response = engineer_api.patch(f"/binaries/{binary.prn}", body)
        assert response.status_code == 400, (body, response.content)
        assert error_of(response)["field"] == field


def test_it_destroys_a_binary_through_patch(engineer_api, version):
    binary = binary_in_state("signed", artifact_version=version)
    response = engineer_api.patch(
        f"/binaries/{binary.prn}", {"state": "destroyed", "reason": "CVE-2024-1234"}
    )
    assert response.status_code == 200
    assert response.json()["binary"]["state"] == "destroyed"
    assert BinaryEvent.objects.filter(binary=binary).last().reason == "CVE-2024-1234"


# --- Destroy ----------------------------------------------------------------------------


def test_it_destroys_a_binary(engineer_api, version):
    binary = binary_in_state("signed", artifact_version=version)
    response = engineer_api.delete(f"/binaries/{binary.prn}", reason="Accidental upload")
    assert response.status_code == 204
    assert response.content == b""
    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    event = BinaryEvent.objects.filter(binary=binary).last()
    assert (event.from_state, event.to_state, event.reason) == (
        "signed",
        "destroyed",
        "Accidental upload",
    )
    assert event.actor_api_key is not None
    assert engineer_api.get(f"/binaries/{binary.prn}").json()["binary"]["state"] == "destroyed"


def test_it_takes_the_destroy_reason_from_a_json_body(engineer_api, version):
    binary = binary_in_state("signable", artifact_version=version)
    response = engineer_api.delete(f"/binaries/{binary.prn}", {"reason": "Legal request"})
    assert response.status_code == 204
    assert BinaryEvent.objects.filter(binary=binary).last().reason == "Legal request"


@pytest.mark.parametrize("state", ["uploadable", "hashable", "signable", "signed"])
def test_it_destroys_a_binary_in_every_live_state(engineer_api, version, state):
    # Uploadable and hashable too (beyond the guide's diagram), as the hosted platform's CLI
    # expects of `binaries delete`: an abandoned upload must not hold its target for ever.
    binary = binary_in_state(state, artifact_version=version)
    response = engineer_api.delete(f"/binaries/{binary.prn}")
    assert response.status_code == 204, response.content
    binary.refresh_from_db()
    assert binary.state == "destroyed"


def test_it_refuses_to_destroy_a_binary_while_it_is_verified(engineer_api, version):
    binary = binary_in_state("hashing", artifact_version=version)
    response = engineer_api.delete(f"/binaries/{binary.prn}")
    assert response.status_code == 409
    assert error_of(response)["message"] == (
        "The binary is hashing and cannot move to destroyed; "
        "from hashing it can move to: uploadable."
    )


def test_it_refuses_to_destroy_twice(engineer_api, version):
    binary = binary_in_state("destroyed", artifact_version=version)
    response = engineer_api.delete(f"/binaries/{binary.prn}")
    assert response.status_code == 409
    assert "none (it is final)" in error_of(response)["message"]


def test_it_explains_a_bad_destroy_body(engineer_api, version):
    binary = binary_in_state("signed", artifact_version=version)
    response = engineer_api.delete(f"/binaries/{binary.prn}", {"why": "x"})
    assert response.status_code == 400
    assert error_of(response)["field"] == "why"
    assert Binary.objects.get().state == State.SIGNED


# --- Another organization's binaries are not found ----------------------------------------


def test_it_answers_404_to_another_organization(outsider_api, org):
    version = ArtifactVersionFactory(artifact__organization=org)
    binary = binary_in_state("signed", artifact_version=version, description="theirs")
    probes = [
        ("post", "/binaries", {"artifact_version_prn": version.prn, "target": "universal"}),
        ("get", f"/binaries?artifact_version_prn={version.prn}", None),
        ("get", f"/binaries/{binary.prn}", None),
        ("patch", f"/binaries/{binary.prn}", {"description": "mine"}),
        ("patch", f"/binaries/{binary.prn}", {"state": "destroyed"}),
        ("delete", f"/binaries/{binary.prn}", None),
    ]
    for method, path, body in probes:
        if method == "get":
            response = outsider_api.client.get(f"/v1{path}")
        else:
            response = getattr(outsider_api, method)(path, body)
        assert response.status_code == 404, (method, path, response.content)
        assert error_of(response)["code"] == "not_found"
    binary.refresh_from_db()
    assert (binary.state, binary.description) == (State.SIGNED, "theirs")
    assert Binary.objects.count() == 1
    assert outsider_api.get("/binaries").json()["binaries"] == []


def test_it_answers_404_for_a_forged_prn_in_its_own_organization(outsider_api, org):
    # The right organization in the PRN, the uuid of a binary that belongs to another one.
    binary = BinaryFactory(artifact_version__artifact__organization=org)
    forged = f"{outsider_api.organization.prn}:binary:{binary.uuid}"
    assert outsider_api.get(f"/binaries/{forged}").status_code == 404
    assert outsider_api.delete(f"/binaries/{forged}").status_code == 404
