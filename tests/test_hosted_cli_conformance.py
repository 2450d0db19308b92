"""The hosted platform's official `peridio` CLI 1.7 and Rust SDK against this server.

Each call is sent as the SDK sends it (tests/hosted_sdk.py: `Authorization: Token`,
`x-api-version: 2`, its bodies field for field) to a live server, and each answer is parsed by
the SDK's response structs transcribed there. Every test runs on both storage backends.
"""

import base64
import json
import os
import uuid
from collections import Counter

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from binaries.models import Binary as BinaryModel
from tests.factories import ApiKeyFactory
from tests.hosted_sdk import (
    Call,
    CliError,
    HostedApi,
    SdkError,
    Signer,
    cli_binaries_create,
    raw_public_key_b64,
    sha256_hex,
    sign_hex_digest,
)
from tests.signing_helpers import keyid_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

MiB = 1 << 20
TARGET = "aarch64-linux-gnu"


@pytest.fixture
def api(live_server, backend, admin_membership, monkeypatch):
    """An organization admin's client, the way `peridio --base-url http://host/v1` makes it."""
    from django.core.servers.basehttp import WSGIRequestHandler

    # The live server writes headers and body in separate packets; without TCP_NODELAY each
    # answer waits ~40 ms for a delayed ACK.
    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)
    key = ApiKeyFactory(organization=admin_membership.organization, user=admin_membership.user)
    client = HostedApi(base_url=f"{live_server.url}/v1", api_key=key.secret)
    yield client
    client.close()


def made(api: HostedApi, version: str = "1.0.0") -> str:
    """An artifact and a version through the SDK; returns the version's PRN."""
    artifact = api.artifacts_create(name=f"firmware-{uuid.uuid4().hex[:8]}")
    assert artifact is not None
    created = api.artifact_versions_create(artifact.artifact.prn, version)
    assert created is not None
    return created.artifact_version.prn


def registered(api: HostedApi) -> Signer:
    """`peridio signing-keys create --algorithm Ed25519`: the raw public key, base64."""
    private = ed25519.Ed25519PrivateKey.generate()
    created = api.signing_keys_create(
        raw_public_key_b64(private), f"release-{uuid.uuid4().hex[:8]}"
    )
    assert created is not None
    assert created.signing_key.keyid == keyid_of(private)
    return Signer(private, created.signing_key.prn)


def raw_key_of(value: str) -> str:
    """An Ed25519 public key given as PEM or as the base64 of its 32 bytes, as the latter."""
    from cryptography.hazmat.primitives import serialization

    if not value.startswith("-----BEGIN"):
        return value
    key = serialization.load_pem_public_key(value.encode())
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def steps(calls: list[Call]) -> list[tuple[str, str, int]]:
    """The calls with PRNs folded away: (method, path shape, status)."""
    shaped = []
    for call in calls:
        path = "/".join(
            "{prn}" if part.startswith("prn:") else part for part in call.path.split("/")
        )
        shaped.append((call.method, path, call.status))
    return shaped


def downloaded(api: HostedApi, prn: str) -> bytes:
    answer = api.binaries_download_url(prn)
    assert answer is not None
    with httpx.Client(timeout=120) as http:
        response = http.get(answer.download_url)
    assert response.status_code == 200, response.text[:500]
    return response.content


def assert_platform_list_shape(calls: list[Call]) -> None:
    """x-api-version 2: `next_page` is a string or absent, never null."""
    for call in calls:
        if call.method == "GET" and call.status == 200 and call.answer.startswith("{"):
            body = json.loads(call.answer)
            if "next_page" in body:
                assert isinstance(body["next_page"], str), (call.path, body["next_page"])


# --- binaries create --content-path -----------------------------------------------------------


def test_it_runs_binaries_create_with_a_signing_key_and_recognises_the_rerun(api):
    version = made(api)
    signer = registered(api)
    content = os.urandom(10 * MiB + 1000)  # three parts of the CLI's default 5 MiB
    api.calls.clear()

    binary = cli_binaries_create(api, version, TARGET, content, signer, concurrency=4)

    shaped = steps(api.calls)
    assert shaped[:3] == [
        ("GET", "/v1/binaries", 200),  # the lookup by target and version: nothing yet
        ("POST", "/v1/binaries", 201),
        ("GET", "/v1/binaries/{prn}/parts", 200),
    ]
    assert Counter(shaped[3:9]) == Counter(  # the parts, concurrently
        [("PUT", f"/v1/binaries/{{prn}}/parts/{index}", 201) for index in (1, 2, 3)]
        + [("PUT", "<presigned_upload_url>", 200)] * 3
    )
    assert shaped[9:] == [
        ("PATCH", "/v1/binaries/{prn}", 200),  # hashable
        ("PATCH", "/v1/binaries/{prn}", 200),  # hashing, already verified here: a harmless 200
        ("GET", "/v1/binaries/{prn}", 200),  # the first poll finds it signable
        ("POST", "/v1/binary_signatures", 201),
        ("PATCH", "/v1/binaries/{prn}", 200),  # signed
    ]
    assert [call.body for call in api.calls if call.method == "PATCH"] == [
        {"prn": binary.prn, "state": state} for state in ("hashable", "hashing", "signed")
    ]
    assert binary.state == "signed"
    assert binary.hash == sha256_hex(content)  # bare lowercase hex under x-api-version 2
    assert binary.size == len(content)
    assert [s.signing_key_prn for s in binary.signatures or []] == [signer.signing_key_prn]
    assert_platform_list_shape(api.calls)
    assert downloaded(api, binary.prn) == content

    # The same file again: found by the lookup, same hash and size, already signed: one call.
    api.calls.clear()
    again = cli_binaries_create(api, version, TARGET, content, signer)
    assert again.prn == binary.prn
    assert steps(api.calls) == [("GET", "/v1/binaries", 200)]

    # Another file for the same target: a signed binary is never overwritten.
    api.calls.clear()
    with pytest.raises(CliError, match="signed binary already exists"):
        cli_binaries_create(api, version, TARGET, b"other content", signer)
    assert steps(api.calls) == [
        ("GET", "/v1/binaries", 200),
        ("GET", "/v1/artifact_versions/{prn}", 200),
        ("GET", "/v1/artifacts/{prn}", 200),
    ]


def test_it_resets_an_unsigned_binary_when_the_file_changed(api):
    version = made(api)
    first = os.urandom(3000)
    binary = cli_binaries_create(api, version, TARGET, first)
    assert binary.state == "signable"  # verified inline before the client's `hashing`

    api.calls.clear()
    assert cli_binaries_create(api, version, TARGET, first).prn == binary.prn
    assert steps(api.calls) == [("GET", "/v1/binaries", 200)]

    second = os.urandom(4000)
    api.calls.clear()
    reset = cli_binaries_create(api, version, TARGET, second)
    assert steps(api.calls) == [
        ("GET", "/v1/binaries", 200),
        ("PATCH", "/v1/binaries/{prn}", 200),  # {"prn", "state": "uploadable"}
        ("PATCH", "/v1/binaries/{prn}", 200),  # {"prn", "hash", "size"}
        ("GET", "/v1/binaries/{prn}/parts", 200),
        ("PUT", "/v1/binaries/{prn}/parts/1", 201),
        ("PUT", "<presigned_upload_url>", 200),
        ("PATCH", "/v1/binaries/{prn}", 200),
        ("PATCH", "/v1/binaries/{prn}", 200),
    ]
    assert api.calls[2].body == {"prn": binary.prn, "hash": sha256_hex(second), "size": 4000}
    assert (reset.prn, reset.state, reset.hash) == (binary.prn, "signable", sha256_hex(second))
    assert reset.revision > binary.revision


def test_it_answers_hashing_and_signed_again_with_the_binary(api):
    version = made(api)
    signer = registered(api)
    binary = cli_binaries_create(api, version, TARGET, b"x" * 100, signer)
    for state in ("hashing", "signed"):
        again = api.binaries_update(binary.prn, state=state)
        assert again is not None
        assert again.binary.state == "signed"


# --- binary delete in every live state -------------------------------------------------------


def _hashable(api: HostedApi, version: str, target: str, monkeypatch) -> str:
    """Uploaded and marked hashable, with verification held back (no worker picks it up)."""
    content = os.urandom(2048)
    created = api.binaries_create(version, target, sha256_hex(content), len(content))
    assert created is not None
    prn = created.binary.prn
    part = api.binary_parts_create(prn, 1, len(content), sha256_hex(content), len(content))
    assert part is not None
    from tests.hosted_sdk import upload_chunk

    assert upload_chunk(part.binary_part.presigned_upload_url, content).status_code == 200
    monkeypatch.setattr("binaries.tasks.enqueue_verification", lambda binary_id: None)
    assert _state(api.binaries_update(prn, state="hashable")) == "hashable"
    monkeypatch.undo()
    return prn


def _state(response) -> str:
    assert response is not None
    return response.binary.state


@pytest.mark.parametrize("state", ["uploadable", "hashable", "signable", "signed"])
def test_it_deletes_a_binary_in_every_live_state_but_hashing(api, state, monkeypatch):
    version = made(api)
    if state == "uploadable":
        created = api.binaries_create(version, TARGET, "ab" * 32, 10)
        assert created is not None
        prn = created.binary.prn
    elif state == "hashable":
        prn = _hashable(api, version, TARGET, monkeypatch)
    else:
        signer = registered(api) if state == "signed" else None
        prn = cli_binaries_create(api, version, TARGET, os.urandom(1000), signer).prn
    assert _state(api.binaries_get(prn)) == state

    assert api.binaries_delete(prn) is None  # 204, as the SDK expects

    assert _state(api.binaries_get(prn)) == "destroyed"


def test_it_lets_the_cli_create_the_target_again_after_a_delete(api):
    """On the platform a deleted binary is gone; here its record stays `destroyed`. The CLI's
    lookup (`target:'..' and artifact_version_prn:'..'`, one result expected) must not hand
    it that record, or it tries to reset it and stops on a 409."""
    version = made(api)
    first = cli_binaries_create(api, version, TARGET, b"first")
    assert api.binaries_delete(first.prn) is None
    api.calls.clear()
    again = cli_binaries_create(api, version, TARGET, b"second")
    assert again.prn != first.prn
    assert steps(api.calls)[:2] == [("GET", "/v1/binaries", 200), ("POST", "/v1/binaries", 201)]


def test_it_refuses_to_delete_a_binary_while_it_is_hashed_saying_so(api, monkeypatch):
    """The one live state a delete still differs in: the worker is reading the content. The
    SDK gets the platform's error shape, which the CLI prints; deleting works once it is
    signable (seconds later)."""
    from binaries import lifecycle
    from peridio_console.accounts.actors import Actor

    prn = _hashable(api, made(api), TARGET, monkeypatch)
    row = BinaryModel.objects.get(uuid=prn.rsplit(":", 1)[1])
    lifecycle.transition(row, to="hashing", actor=Actor.system("test setup"))
    with pytest.raises(SdkError) as refused:
        api.binaries_delete(prn)
    assert refused.value.status == 409
    assert "hashing" in refused.value.detail
    assert _state(api.binaries_get(prn)) == "hashing"


def test_it_refuses_to_delete_a_destroyed_binary_in_the_platforms_error_shape(api):
    version = made(api)
    created = api.binaries_create(version, TARGET, "ab" * 32, 10)
    assert created is not None
    api.binaries_delete(created.binary.prn)
    with pytest.raises(SdkError) as refused:
        api.binaries_delete(created.binary.prn)
    assert 400 <= refused.value.status < 500
    assert "destroyed" in refused.value.detail


# --- signatures -------------------------------------------------------------------------------


def _exists(api: HostedApi, binary_prn: str, keyid: str) -> list[str]:
    """binary_signatures.rs `signature_exists`: the CLI's search before a pre-computed one."""
    search = f"binary_prn:'{binary_prn}' and signature.signing_key.keyid:'{keyid}'"
    found = api.binary_signatures_list(search)
    assert found is not None
    return [s.prn for s in found.binary_signatures]


def test_it_creates_lists_and_deletes_signatures_by_key_prn_and_by_keyid(api):
    version = made(api)
    signer = registered(api)
    keyid = keyid_of(signer.private_key)
    one = cli_binaries_create(api, version, "arm-linux-gnueabihf", os.urandom(1500))
    two = cli_binaries_create(api, version, "x86_64-linux-gnu", os.urandom(1600))
    assert _exists(api, one.prn, keyid) == []

    by_prn = api.binary_signatures_create(
        one.prn,
        sign_hex_digest(signer.private_key, one.hash or ""),
        signing_key_prn=signer.signing_key_prn,
    )
    assert by_prn is not None
    first = by_prn.binary_signature
    assert (first.binary_prn, first.signing_key_prn, first.keyid) == (
        one.prn,
        signer.signing_key_prn,
        keyid,
    )
    by_keyid = api.binary_signatures_create(
        two.prn, sign_hex_digest(signer.private_key, two.hash or ""), signing_key_keyid=keyid
    )
    assert by_keyid is not None
    second = by_keyid.binary_signature
    assert (second.binary_prn, second.signing_key_prn) == (two.prn, signer.signing_key_prn)

    assert _exists(api, one.prn, keyid) == [first.prn]
    assert _exists(api, two.prn, keyid) == [second.prn]
    absent = one.prn.rsplit(":", 1)[0] + f":{uuid.uuid4()}"
    assert _exists(api, absent, keyid) == []
    by_key = api.binary_signatures_list(f"signing_key_prn:'{signer.signing_key_prn}'")
    assert by_key is not None
    assert {s.prn for s in by_key.binary_signatures} == {first.prn, second.prn}
    assert_platform_list_shape(api.calls)

    assert api.binary_signatures_delete(second.prn) is None
    assert _exists(api, two.prn, keyid) == []


# --- signing keys -----------------------------------------------------------------------------


def test_it_creates_gets_lists_renames_and_deletes_a_signing_key(api):
    signer = registered(api)
    got = api.signing_keys_get(signer.signing_key_prn)
    assert got is not None
    # The schema does not say the value comes back as sent; it must be the same public key.
    assert raw_key_of(got.signing_key.value or "") == raw_public_key_b64(signer.private_key)
    listed = api.signing_keys_list()
    assert listed is not None
    assert signer.signing_key_prn in [k.prn for k in listed.signing_keys]

    renamed = api.signing_keys_update(signer.signing_key_prn, name="renamed")
    assert renamed is not None
    assert renamed.signing_key.name == "renamed"
    assert api.calls[-1].body == {"prn": signer.signing_key_prn, "name": "renamed"}

    # DELETE revokes (the key stays for the history of what it signed); what the CLI relies
    # on is the 204 and that the key signs nothing more.
    binary = cli_binaries_create(api, made(api), TARGET, os.urandom(700))
    assert api.signing_keys_delete(signer.signing_key_prn) is None
    with pytest.raises(SdkError) as refused:
        api.binary_signatures_create(
            binary.prn,
            sign_hex_digest(signer.private_key, binary.hash or ""),
            signing_key_prn=signer.signing_key_prn,
        )
    assert 400 <= refused.value.status < 500 and refused.value.detail
    assert_platform_list_shape(api.calls)


# --- artifacts and versions -------------------------------------------------------------------


def test_it_creates_gets_lists_and_updates_artifacts_and_versions_with_the_sdks_bodies(api):
    wanted = str(uuid.uuid4())
    artifact = api.artifacts_create(name="bootloader", description="first", id=wanted)
    assert artifact is not None
    prn = artifact.artifact.prn
    assert prn.endswith(f":artifact:{wanted}")
    assert api.calls[-1].body == {
        "custom_metadata": None,
        "description": "first",
        "id": wanted,
        "name": "bootloader",
    }
    got = api.artifacts_get(prn)
    assert got is not None and got.artifact.name == "bootloader"
    listed = api.artifacts_list("name:'bootloader'")
    assert listed is not None and [a.prn for a in listed.artifacts] == [prn]
    updated = api.artifacts_update(prn, description="second")
    assert updated is not None and updated.artifact.description == "second"

    version_id = str(uuid.uuid4())
    version = api.artifact_versions_create(prn, "2.0.0", id=version_id)
    assert version is not None
    version_prn = version.artifact_version.prn
    assert version_prn.endswith(f":artifact_version:{version_id}")
    assert api.artifact_versions_get(version_prn) is not None
    versions = api.artifact_versions_list(f"artifact_prn:'{prn}'")
    assert versions is not None and [v.prn for v in versions.artifact_versions] == [version_prn]
    changed = api.artifact_versions_update(version_prn, description="notes")
    assert changed is not None and changed.artifact_version.description == "notes"
    assert_platform_list_shape(api.calls)

    binary_id = str(uuid.uuid4())
    binary = api.binaries_create(version_prn, TARGET, "ab" * 32, 10, id=binary_id)
    assert binary is not None and binary.binary.prn.endswith(f":binary:{binary_id}")


def test_it_deletes_an_empty_version_and_artifact(api):
    artifact = api.artifacts_create(name="short-lived")
    assert artifact is not None
    version = api.artifact_versions_create(artifact.artifact.prn, "0.0.1")
    assert version is not None
    assert api.artifact_versions_delete(version.artifact_version.prn) is None
    assert api.artifacts_delete(artifact.artifact.prn) is None
    with pytest.raises(SdkError) as gone:
        api.artifacts_get(artifact.artifact.prn)
    assert gone.value.status == 404 and gone.value.detail


def test_it_refuses_a_taken_or_malformed_id_and_a_prn_that_is_not_the_paths(api):
    wanted = str(uuid.uuid4())
    first = api.artifacts_create(name="one", id=wanted)
    assert first is not None
    with pytest.raises(SdkError) as taken:
        api.artifacts_create(name="two", id=wanted)
    assert taken.value.status == 409 and taken.value.detail
    with pytest.raises(SdkError) as malformed:
        api.artifacts_create(name="three", id="not-a-uuid")
    assert malformed.value.status == 400 and "id" in malformed.value.detail

    other = api.artifacts_create(name="other")
    assert other is not None
    path_prn, body_prn = first.artifact.prn, other.artifact.prn
    with pytest.raises(SdkError) as mismatch:
        api.execute(
            "PATCH",
            f"/artifacts/{path_prn}",
            type(first),
            {"prn": body_prn, "description": "x"},
        )
    assert mismatch.value.status == 400
    assert path_prn in mismatch.value.detail and body_prn in mismatch.value.detail
    unchanged = api.artifacts_get(path_prn)
    assert unchanged is not None and unchanged.artifact.description is None


# --- base URL and the version header ----------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_it_answers_a_base_url_without_v1_with_json_that_says_so(api, method):
    base = api.base_url.removesuffix("/v1")
    response = httpx.request(
        method,
        f"{base}/artifacts",
        headers={"Authorization": f"Token {api.api_key}", "x-api-version": "2"},
        json={"name": "x", "custom_metadata": None, "description": None}
        if method == "POST"
        else None,
        follow_redirects=False,
    )
    assert 400 <= response.status_code < 500, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    assert "/v1" in SdkError(response.status_code, response.text, "").detail


def test_it_keeps_the_guides_shapes_without_the_version_header(api):
    version = made(api)
    content = os.urandom(500)
    created = api.binaries_create(version, TARGET, sha256_hex(content), len(content))
    assert created is not None and created.binary.hash == sha256_hex(content)
    response = httpx.get(
        f"{api.base_url}/binaries/{created.binary.prn}",
        headers={"Authorization": f"Token {api.api_key}"},
    )
    assert response.status_code == 200
    assert response.json()["binary"]["hash"] == f"sha256:{sha256_hex(content)}"


# --- the transcribed structs read as serde reads ----------------------------------------------

SERDE_BINARY = {
    "artifact_version_prn": "prn:1:o:artifact_version:v",
    "hash": None,
    "organization_prn": "prn:1:o",
    "prn": "prn:1:o:binary:b",
    "inserted_at": "2026-01-01T00:00:00Z",
    "revision": 0,
    "state": "uploadable",
    "target": "universal",
    "updated_at": "2026-01-01T00:00:00Z",
    "something_new": {"ignored": True},
}


def test_the_binary_struct_takes_what_serde_takes():
    from tests.hosted_sdk import Binary

    binary = Binary.model_validate(SERDE_BINARY)  # Options null or absent, unknown keys ignored
    assert (binary.hash, binary.size, binary.signatures) == (None, None, None)
    assert Binary.model_validate({**SERDE_BINARY, "revision": 2**32 - 1}).revision == 2**32 - 1


@pytest.mark.parametrize(
    "change",
    [
        {"revision": None},
        {"revision": -1},
        {"revision": 2**32},
        {"revision": "0"},
        {"revision": 1.5},
        {"size": -1},
        {"size": "10"},
        {"state": "deleted"},
        {"target": None},
        {"signatures": [{"signature": "ab", "keyid": "k"}]},
    ],
)
def test_the_binary_struct_refuses_what_serde_refuses(change):
    from pydantic import ValidationError

    from tests.hosted_sdk import Binary

    with pytest.raises(ValidationError):
        Binary.model_validate({**SERDE_BINARY, **change})


@pytest.mark.parametrize("name", ["revision", "target", "organization_prn", "inserted_at"])
def test_the_binary_struct_refuses_a_required_field_absent(name):
    from pydantic import ValidationError

    from tests.hosted_sdk import Binary

    with pytest.raises(ValidationError):
        Binary.model_validate({k: v for k, v in SERDE_BINARY.items() if k != name})
