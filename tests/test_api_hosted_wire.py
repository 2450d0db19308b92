"""The server side of the drop-in for the hosted platform's clients (its CLI 1.7 over the Rust
SDK peridio-rust 1.4.0): the wire format they get with `x-api-version: 2`, the bodies they
send (prn in PATCH bodies, id on create, the part body), the signature search the CLI asks,
the signing key rename, and API paths sent without their /v1.

Requests here are made as the SDK makes them: `Authorization: Token <key>` and
`x-api-version: 2` on every call (peridio-rust src/api/mod.rs, execute_full).
"""

import base64
import hashlib
import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.test import Client

from binaries.models import Artifact, ArtifactVersion, Binary, SigningKey, State
from peridio_console.accounts.models import AuditEvent
from tests.api_helpers import error_of
from tests.factories import (
    ApiKeyFactory,
    ArtifactFactory,
    BinaryFactory,
    BinarySignatureFactory,
    SigningKeyFactory,
    binary_in_state,
)
from tests.upload_helpers import MiB, random_bytes

HEX = "ab" * 32


class Hosted:
    """A client sending what the hosted SDK sends on every call."""

    def __init__(self, membership, version: str | None = "2"):
        key = ApiKeyFactory(organization=membership.organization, user=membership.user)
        extra = {"HTTP_AUTHORIZATION": f"Token {key.secret}"}
        if version is not None:
            extra["HTTP_X_API_VERSION"] = version
        self.organization = membership.organization
        self.client = Client(**extra)

    def call(self, method: str, path: str, body: Any = None, **headers: str):
        data = b"" if body is None else json.dumps(body)
        return self.client.generic(
            method.upper(), path, data, content_type="application/json", headers=headers
        )

    def get(self, path: str, **params: str):
        return self.client.get(path, params)

    def post(self, path: str, body: Any):
        return self.call("post", path, body)

    def patch(self, path: str, body: Any):
        return self.call("patch", path, body)


@pytest.fixture
def hosted(engineer_membership):
    return Hosted(engineer_membership)


@pytest.fixture
def hosted_admin(admin_membership):
    return Hosted(admin_membership)


def errors_of(response) -> dict[str, Any]:
    """The platform's error shape (peridio-rust src/api/error.rs, ApiError)."""
    body = response.json()
    assert set(body) == {"errors"}, body
    return body["errors"]


# --- The wire format ----------------------------------------------------------------------


def test_it_answers_a_binary_in_the_platforms_form_only_when_asked(hosted, engineer_api, version):
    created = hosted.post(
        "/v1/binaries",
        {
            "artifact_version_prn": version.prn,
            "target": "arm-linux-gnueabihf",
            "hash": HEX,
            "size": 10,
            "description": None,
            "custom_metadata": None,
        },
    )
    assert created.status_code == 201, created.content
    binary = created.json()["binary"]
    assert binary["hash"] == HEX  # bare lowercase hex, as the CLI computes it
    assert binary["revision"] == 1
    assert binary["description"] is None  # the platform's schema: non-empty text or null
    assert "integrity_failed_at" not in binary  # nothing is sent as null but description
    guide = engineer_api.get(f"/binaries/{binary['prn']}").json()["binary"]
    assert guide["hash"] == f"sha256:{HEX}"
    assert guide["description"] == ""
    assert guide["integrity_failed_at"] is None
    assert guide["revision"] == 1


def test_it_leaves_next_page_out_instead_of_null(hosted, engineer_api, org):
    ArtifactFactory(organization=org)
    assert "next_page" not in hosted.get("/v1/artifacts").json()
    assert engineer_api.get("/artifacts").json()["next_page"] is None
    ArtifactFactory(organization=org)
    first = hosted.get("/v1/artifacts", limit="1").json()
    assert isinstance(first["next_page"], str)
    second = hosted.get("/v1/artifacts", limit="1", page=first["next_page"]).json()
    assert "next_page" not in second
    assert [a["prn"] for a in first["artifacts"]] != [a["prn"] for a in second["artifacts"]]


def test_it_answers_errors_in_the_platforms_shapes(hosted, engineer_api, version):
    missing = f"prn:1:{hosted.organization.uuid}:binary:{uuid.uuid4()}"
    not_found = hosted.get(f"/v1/binaries/{missing}")
    assert not_found.status_code == 404
    assert set(errors_of(not_found)) == {"detail"}
    assert missing in errors_of(not_found)["detail"]

    bad = hosted.post(
        "/v1/binaries", {"artifact_version_prn": version.prn, "target": "x", "hash": "nope"}
    )
    assert bad.status_code == 400
    assert list(errors_of(bad)) == ["hash"]
    assert "SHA-256" in errors_of(bad)["hash"][0]

    unknown_path = hosted.get("/v1/no_such_thing")
    assert unknown_path.status_code == 404 and set(errors_of(unknown_path)) == {"detail"}
    method = hosted.call("put", "/v1/artifacts")
    assert method.status_code == 405 and "PUT is not allowed" in errors_of(method)["detail"]

    stranger = Client(HTTP_AUTHORIZATION="Token pdo_nope_nope", HTTP_X_API_VERSION="2")
    refused = stranger.get("/v1/artifacts")
    assert refused.status_code == 401 and set(errors_of(refused)) == {"detail"}

    # Without the header: the guide's one shape, unchanged.
    assert error_of(engineer_api.get(f"/binaries/{missing}"))["code"] == "not_found"


def test_it_adds_organization_prn_to_parts_and_signatures(hosted, org, version, actor):
    binary = BinaryFactory(artifact_version=version, organization=org, hash=HEX, size=6 * MiB)
    part = hosted.call(
        "put",
        f"/v1/binaries/{binary.prn}/parts/1",
        {"binary_prn": binary.prn, "index": 1, "expected_binary_size": 6 * MiB}
        | {"hash": HEX, "size": 5 * MiB},
    )
    assert part.status_code == 201, part.content
    assert part.json()["binary_part"]["organization_prn"] == org.prn
    assert part.json()["binary_part"]["hash"] == HEX
    listed = hosted.get(f"/v1/binaries/{binary.prn}/parts").json()["binary_parts"]
    assert [p["organization_prn"] for p in listed] == [org.prn]

    signed = binary_in_state(State.SIGNABLE, artifact_version=version, organization=org)
    BinarySignatureFactory(binary=signed)
    signatures = hosted.get("/v1/binary_signatures").json()["binary_signatures"]
    assert [s["organization_prn"] for s in signatures] == [org.prn]


# --- revision -----------------------------------------------------------------------------


def test_it_counts_a_revision_each_time_the_declared_content_changes(hosted, org, version):
    binary = BinaryFactory(artifact_version=version, organization=org, hash=HEX, size=10)
    path = f"/v1/binaries/{binary.prn}"
    same = hosted.patch(path, {"prn": binary.prn, "hash": f"sha256:{HEX.upper()}", "size": 10})
    assert same.json()["binary"]["revision"] == 1  # the same content in another form
    other = hosted.patch(path, {"prn": binary.prn, "hash": "cd" * 32, "size": 10})
    assert other.json()["binary"]["revision"] == 2
    described = hosted.patch(path, {"prn": binary.prn, "description": "nightly"})
    assert described.json()["binary"]["revision"] == 2
    assert Binary.objects.get(pk=binary.pk).revision == 2


# --- prn in PATCH bodies, id on create ----------------------------------------------------


def _patch_paths(org, version) -> list[tuple[str, dict[str, Any]]]:
    artifact = version.artifact
    binary = BinaryFactory(artifact_version=version, organization=org)
    key = SigningKeyFactory(organization=org)
    return [
        (f"/v1/artifacts/{artifact.prn}", {"description": "changed"}),
        (f"/v1/artifact_versions/{version.prn}", {"description": "changed"}),
        (f"/v1/binaries/{binary.prn}", {"description": "changed"}),
        (f"/v1/signing_keys/{key.prn}", {"name": "changed"}),
    ]


@pytest.mark.django_db
def test_it_takes_the_paths_prn_in_a_patch_body(hosted, org, version):
    for path, change in _patch_paths(org, version):
        prn = path.rsplit("/", 1)[1]
        response = hosted.patch(path, {"prn": prn, **change})
        assert response.status_code == 200, (path, response.content)
        (body,) = response.json().values()
        assert body["prn"] == prn
        assert body.get("description", body.get("name")) == "changed"


def test_it_refuses_another_prn_in_a_patch_body_naming_both(hosted, org, version):
    other = f"prn:1:{org.uuid}:artifact:{uuid.uuid4()}"
    for path, change in _patch_paths(org, version):
        prn = path.rsplit("/", 1)[1]
        response = hosted.patch(path, {"prn": other, **change})
        assert response.status_code == 400, path
        (message,) = errors_of(response)["prn"]
        assert other in message and prn in message
    assert not Artifact.objects.filter(description="changed").exists()
    assert not ArtifactVersion.objects.filter(description="changed").exists()
    assert not Binary.objects.filter(description="changed").exists()
    assert not SigningKey.objects.filter(name="changed").exists()


def test_it_honours_an_id_on_create(hosted, org, version):
    artifact_id, version_id, binary_id = (str(uuid.uuid4()) for _ in range(3))
    artifact = hosted.post("/v1/artifacts", {"name": "with-id", "id": artifact_id})
    assert artifact.status_code == 201, artifact.content
    assert artifact.json()["artifact"]["prn"] == f"prn:1:{org.uuid}:artifact:{artifact_id}"
    made = hosted.post(
        "/v1/artifact_versions",
        {"artifact_prn": artifact.json()["artifact"]["prn"], "version": "1", "id": version_id},
    )
    assert made.json()["artifact_version"]["prn"].endswith(f":artifact_version:{version_id}")
    binary = hosted.post(
        "/v1/binaries",
        {"artifact_version_prn": version.prn, "target": "t", "hash": HEX, "size": 1}
        | {"id": binary_id.upper()},
    )
    assert binary.json()["binary"]["prn"] == f"prn:1:{org.uuid}:binary:{binary_id}"


def test_it_refuses_an_id_taken_or_not_a_uuid(hosted, org, version):
    taken = str(BinaryFactory(artifact_version=version, organization=org).uuid)
    body = {"artifact_version_prn": version.prn, "target": "other", "hash": HEX, "size": 1}
    conflict = hosted.post("/v1/binaries", body | {"id": taken})
    assert conflict.status_code == 409
    assert taken in errors_of(conflict)["detail"]
    bad = hosted.post("/v1/artifacts", {"name": "x", "id": "not-a-uuid"})
    assert bad.status_code == 400
    assert "UUID" in errors_of(bad)["id"][0]
    artifact_taken = hosted.post("/v1/artifacts", {"name": "y", "id": str(version.artifact.uuid)})
    assert artifact_taken.status_code == 409
    assert Binary.objects.count() == 1
    assert not Artifact.objects.filter(name__in=["x", "y"]).exists()


# --- The signature search the CLI asks ----------------------------------------------------


def test_it_searches_signatures_as_the_cli_asks(hosted, org, version):
    one = binary_in_state(State.SIGNABLE, artifact_version=version, organization=org)
    two = binary_in_state(State.SIGNABLE, artifact_version=version, organization=org)
    first = BinarySignatureFactory(binary=one)
    BinarySignatureFactory(binary=two)
    keyid = first.signing_key.keyid

    def search(text: str) -> list[str]:
        response = hosted.get("/v1/binary_signatures", search=text)
        assert response.status_code == 200, response.content
        return [s["binary_prn"] for s in response.json()["binary_signatures"]]

    # binary_signatures.rs, signature_exists: exactly this query.
    assert search(f"binary_prn:'{one.prn}' and signature.signing_key.keyid:'{keyid}'") == [one.prn]
    assert search(f"binary_prn:'{two.prn}' and signature.signing_key.keyid:'{keyid}'") == []
    missing = f"prn:1:{org.uuid}:binary:{uuid.uuid4()}"
    assert search(f"binary_prn:'{missing}'") == []
    assert search(f"signing_key_prn:'{first.signing_key.prn}'") == [one.prn]
    bad = hosted.get("/v1/binary_signatures", search="colour:'red'")
    assert bad.status_code == 400
    assert "signature.signing_key.keyid" in errors_of(bad)["search"][0]


# --- Signing keys: rename -----------------------------------------------------------------


def test_it_renames_a_signing_key(hosted, org, engineer_membership):
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    created = hosted.post(
        "/v1/signing_keys", {"name": "release", "value": base64.b64encode(raw).decode()}
    )
    assert created.status_code == 201, created.content
    prn = created.json()["signing_key"]["prn"]
    renamed = hosted.patch(
        f"/v1/signing_keys/{prn}",
        {"prn": prn, "name": "release-2026", "value": base64.b64encode(raw).decode()},
    )
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["signing_key"]["name"] == "release-2026"
    assert hosted.get(f"/v1/signing_keys/{prn}").json()["signing_key"]["name"] == "release-2026"
    event = AuditEvent.objects.get(action="signing_key.updated")
    assert event.details == {"changes": {"name": ["release", "release-2026"]}}
    assert event.object_prn == prn

    other = ed25519.Ed25519PrivateKey.generate().public_key()
    other_value = base64.b64encode(
        other.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    refused = hosted.patch(f"/v1/signing_keys/{prn}", {"name": "x", "value": other_value})
    assert refused.status_code == 400
    assert prn in errors_of(refused)["value"][0]
    empty = hosted.patch(f"/v1/signing_keys/{prn}", {"name": ""})
    assert empty.status_code == 400 and list(errors_of(empty)) == ["name"]
    assert SigningKey.objects.get().name == "release-2026"


def test_a_viewer_cannot_rename_a_signing_key(viewer_membership, org):
    key = SigningKeyFactory(organization=org, name="kept")
    response = Hosted(viewer_membership).patch(f"/v1/signing_keys/{key.prn}", {"name": "x"})
    assert response.status_code == 403
    assert SigningKey.objects.get().name == "kept"


# --- API paths without /v1 ----------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/artifacts"),
        ("post", "/artifacts"),
        ("get", "/binaries"),
        ("post", "/binaries"),
        ("get", "/artifact_versions"),
        ("get", "/signing_keys/prn:1:x:signing_key:y"),
        ("patch", "/binaries/prn:1:x:binary:y"),
        ("put", "/binaries/prn:1:x:binary:y/parts/1"),
        ("delete", "/binary_signatures/prn:1:x:binary_signature:y"),
    ],
)
def test_it_tells_a_client_without_v1_to_add_it(hosted, method, path):
    response = hosted.call(method, path, {"name": "x"})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert f"/v1{path}" in errors_of(response)["detail"]


def test_it_tells_a_plain_client_too_and_keeps_the_console_pages(client, admin_membership):
    plain = client.post("/artifacts", "{}", content_type="application/json")
    assert plain.status_code == 404
    assert "/v1/artifacts" in error_of(plain)["message"]
    client.force_login(admin_membership.user)
    page = client.get("/artifacts/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    browser = client.get("/artifacts", headers={"accept": "text/html"})
    assert browser.status_code == 301 and browser["Location"] == "/artifacts/"


# --- Parts as the SDK sends them, bytes as the CLI PUTs them ------------------------------


def cli_put_headers(chunk: bytes) -> dict[str, str]:
    """binary_upload.rs, upload_chunk: exactly these three headers."""
    return {
        "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(chunk).digest()).decode(),
        "content-length": str(len(chunk)),
        "content-type": "application/octet-stream",
    }


def sdk_part(hosted, binary_prn: str, index: int, chunk: bytes, part_size: int, total: int):
    """binary_parts.rs, create: its body and its content-range (which for a short last part
    is computed from that part's own size, hence not where the part lies)."""
    start, end = (index - 1) * len(chunk), len(chunk) * index - 1
    return hosted.call(
        "put",
        f"/v1/binaries/{binary_prn}/parts/{index}",
        {
            "binary_prn": binary_prn,
            "index": index,
            "expected_binary_size": total,
            "hash": hashlib.sha256(chunk).hexdigest(),
            "size": len(chunk),
        },
        **{"content-range": f"bytes {start}-{end}/{total}"},
    )


@pytest.mark.django_db(transaction=True)
def test_the_clis_parts_upload_on_both_backends(client, backend, hosted, org, version):
    data = random_bytes(5 * MiB + 4321)
    digest = hashlib.sha256(data).hexdigest()
    created = hosted.post(
        "/v1/binaries",
        {"artifact_version_prn": version.prn, "target": "t", "hash": digest, "size": len(data)},
    )
    prn = created.json()["binary"]["prn"]
    chunks = [data[: 5 * MiB], data[5 * MiB :]]
    for index, chunk in enumerate(chunks, start=1):
        declared = sdk_part(hosted, prn, index, chunk, 5 * MiB, len(data))
        assert declared.status_code == 201, declared.content
        url = declared.json()["binary_part"]["presigned_upload_url"]
        headers = cli_put_headers(chunk)
        if backend.name == "s3":
            signed = dict(parse_qsl(urlsplit(url).query))["X-Amz-SignedHeaders"].split(";")
            # Every header S3 checks is one the CLI sends; every x-amz-* it sends is signed.
            assert set(signed) <= {"host", *headers}
            assert "x-amz-checksum-sha256" in signed and "content-length" in signed
            status = httpx.put(url, content=chunk, headers=headers).status_code
        else:
            status = client.put(
                urlsplit(url).path,
                data=chunk,
                content_type=headers["content-type"],
                headers={"x-amz-checksum-sha256": headers["x-amz-checksum-sha256"]},
            ).status_code
        assert status in (200, 201)  # the CLI aborts on anything else
    hashable = hosted.patch(f"/v1/binaries/{prn}", {"prn": prn, "state": "hashable"})
    assert hashable.status_code == 200, hashable.content
    binary = hosted.get(f"/v1/binaries/{prn}").json()["binary"]
    assert binary["state"] == "signable"  # tasks run eagerly in tests
    assert binary["hash"] == digest  # what the CLI compares to decide a rerun is the same


def test_it_refuses_a_part_body_naming_another_index_or_binary(hosted, org, version):
    binary = BinaryFactory(artifact_version=version, organization=org, hash=HEX, size=6 * MiB)
    path = f"/v1/binaries/{binary.prn}/parts/1"
    body = {"hash": HEX, "size": 5 * MiB, "expected_binary_size": 6 * MiB}
    wrong_index = hosted.call("put", path, body | {"index": 2})
    assert wrong_index.status_code == 400
    assert "(2)" in errors_of(wrong_index)["index"][0]
    other = f"prn:1:{org.uuid}:binary:{uuid.uuid4()}"
    wrong_binary = hosted.call("put", path, body | {"binary_prn": other})
    assert wrong_binary.status_code == 400 and other in errors_of(wrong_binary)["binary_prn"][0]
    assert not binary.parts.exists()


# --- A destroyed binary is gone for the platform's clients --------------------------------


def test_it_lists_destroyed_binaries_to_the_platforms_clients_only_by_state(
    hosted, engineer_api, org, version
):
    gone = binary_in_state(State.DESTROYED, artifact_version=version, organization=org)
    live = BinaryFactory(artifact_version=version, organization=org, target=gone.target)
    # binaries.rs, get_or_create_binary: one listed binary is taken for the target's own.
    search = f"target:'{gone.target}' and artifact_version_prn:'{version.prn}'"

    def listed(api, prefix: str, **params: str) -> list[str]:
        response = api.get(f"{prefix}/binaries", **params)
        assert response.status_code == 200, response.content
        return [b["prn"] for b in response.json()["binaries"]]

    assert listed(hosted, "/v1", search=search) == [live.prn]
    assert listed(hosted, "/v1", search=f"{search} and state:destroyed") == [gone.prn]
    assert listed(hosted, "/v1", state="destroyed") == [gone.prn]
    assert listed(engineer_api, "", search=search) == [gone.prn, live.prn]
    assert hosted.get(f"/v1/binaries/{gone.prn}").json()["binary"]["state"] == "destroyed"
