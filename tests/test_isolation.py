"""Organizations are walled off from each other, on every URL there is.

The console walk takes EVERY pattern of the URL resolver (the site root, the console, the
admin) and the API walk EVERY operation of /v1/openapi.json, fills their parameters with the
objects of organization Alpha, and requests them as a member (admin) of organization Beta and
as an anonymous client: the answer is 404 (or 405), 401, or a redirect to a login page, never
a byte of Alpha's data, and Alpha's rows are as they were afterwards.

Upload and download URLs are bearer credentials bound to one part or one binary: splicing
their signed payloads, or using one binary's URL for another, is refused and writes nothing.
"""

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from binaries import downloads, moves
from binaries.models import Binary, BinaryEvent, BinaryPart, BinarySignature, PartState
from binaries.models import SigningKey as SigningKeyModel
from binaries.storage import tokens
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import ApiKey, Membership, Role
from tests.signing_helpers import generate, public_pem
from tests.upload_helpers import MiB, declare, new_binary, random_bytes, sha256
from tests.world_helpers import World, populate

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpha() -> World:
    return populate("Alpha", role=Role.ENGINEER)


@pytest.fixture
def beta(alpha) -> World:
    return populate("Beta", role=Role.ADMIN)


def snapshot(world: World) -> dict[str, Any]:
    """Everything of an organization a stranger could try to change."""
    org = world.organization
    return {
        "binaries": sorted(
            Binary.objects.filter(organization=org).values_list(
                "uuid", "state", "description", "hash", "size", "custom_metadata"
            )
        ),
        "events": BinaryEvent.objects.filter(binary__organization=org).count(),
        "parts": sorted(
            BinaryPart.objects.filter(binary__organization=org).values_list(
                "uuid", "state", "token"
            )
        ),
        "keys": sorted(
            SigningKeyModel.objects.filter(organization=org).values_list("uuid", "revoked_at")
        ),
        "signatures": sorted(
            BinarySignature.objects.filter(binary__organization=org).values_list(
                "uuid", "revoked_at"
            )
        ),
        "api_keys": sorted(ApiKey.objects.filter(organization=org).values_list("pk", "revoked_at")),
        "members": sorted(Membership.objects.filter(organization=org).values_list("pk", "role")),
        "artifacts": sorted(
            world.artifact.__class__.objects.filter(organization=org).values_list(
                "uuid", "name", "description"
            )
        ),
        "versions": sorted(
            world.version.__class__.objects.filter(organization=org).values_list(
                "uuid", "version", "description"
            )
        ),
    }


def leaked(world: World, content: bytes, sent: str = "") -> list[str]:
    """Alpha's strings in an answer, other than those the request itself carried (a 404 may
    quote the PRN it was asked for)."""
    text = content.decode("utf-8", errors="replace")
    return [s for s in world.secrets if s and s in text and s not in sent]


# --- The console: every URL pattern ----------------------------------------------------------

ADMIN_MODELS = {
    "auth/group": lambda w: 999_999,
    "auth/user": lambda w: w.membership.user.pk,
    "peridio_console/organization": lambda w: w.organization.pk,
    "peridio_console/membership": lambda w: w.membership.pk,
    "peridio_console/apikey": lambda w: w.api_key.pk,
    "binaries/artifact": lambda w: w.artifact.pk,
    "binaries/artifactversion": lambda w: w.version.pk,
    "binaries/binary": lambda w: w.signed.pk,
    "binaries/binaryevent": lambda w: BinaryEvent.objects.filter(binary=w.signed).first().pk,
}
SKIPPED = {
    # Bearer-token URLs: the token is the credential; the token tests below cover them.
    "transfer/parts/<str:token>",
    "transfer/binaries/<str:token>",
}


def _walk(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            found.extend(_walk(entry.url_patterns, prefix + str(entry.pattern)))
        else:
            assert isinstance(entry, URLPattern)
            found.append((prefix + str(entry.pattern), entry.pattern))
    return found


def url_patterns() -> list[str]:
    """Every pattern of the site, as text: the API's included (they resolve here too)."""
    return [text for text, _ in _walk(get_resolver().url_patterns)]


def fill(pattern: str, world: World) -> list[str]:
    """Concrete URLs for `pattern` pointing at `world`'s objects (one per binary state for
    binary pages)."""
    binaries = [world.uploadable, world.signable, world.signed]
    values: dict[str, list[str]] = {
        "artifact_id": [str(world.artifact.uuid)],
        "version_id": [str(world.version.uuid)],
        "binary_id": [str(b.uuid) for b in binaries],
        "membership_id": [str(world.membership.pk), str(world.admin_membership.pk)],
        "signature_id": [str(world.signature.uuid)],
        "prn": [world.signed.prn],
        "index": ["1"],
        "rest": [f"binaries/{world.signed.prn}/anything"],
        "app_label": ["binaries"],
        "url": [f"binaries/binary/{world.signed.pk}/"],
        "content_type_id": [str(ContentType.objects.get_for_model(Binary).pk)],
        "id": [str(world.membership.user.pk)],
        # The admin's per-object actions (each behind its confirmation page).
        "action": ["destroy", "reset_to_uploadable", "revoke"],
    }
    model = next((m for m in ADMIN_MODELS if f"admin/{m}/" in pattern), None)
    if model:
        values["object_id"] = [str(ADMIN_MODELS[model](world))]
    else:
        values["object_id"] = [str(world.signed.pk)]

    def value(name: str, converter: str | None) -> list[str]:
        if name == "key_id":  # a signing key's uuid, or an API key's number
            return [str(world.signing_key.uuid)] if converter == "uuid" else [str(world.api_key.pk)]
        assert name in values, f"{pattern}: a parameter this test does not know ({name}); add it"
        return values[name]

    text = pattern.replace("^", "").replace("$", "").replace("\\", "")
    urls = [text]
    for match in re.finditer(r"<(?:(\w+):)?(\w+)>|\(\?P<(\w+)>[^)]*\)", text):
        converter, name = match.group(1), match.group(2) or match.group(3)
        urls = [u.replace(match.group(0), v, 1) for u in urls for v in value(name, converter)]
    return ["/" + u for u in urls]


def has_parameters(pattern: str) -> bool:
    return "<" in pattern or "(?P" in pattern


POST_DATA = {
    "name": "isolation",
    "version": "6.6.6",
    "target": "aarch64-linux-gnu",
    "hash": "ab" * 32,
    "size": "3",
    "description": "isolation",
    "reason": "isolation test",
    "confirm": "yes",  # what a destructive action's confirmation sends
    "confirm_target": "aarch64-linux-gnu",
    "role": "viewer",
    "signature": "00" * 64,
    "value": "not a key",
}


def _is_login_redirect(response: Any, login: str) -> bool:
    return response.status_code == 302 and urlsplit(response["Location"]).path == login


def _request(client: Client, method: str, url: str, data: dict[str, str]) -> Any:
    response = client.post(url, data) if method == "POST" else client.get(url)
    response.body = content_of(response)
    return response


def _beta_answer_ok(pattern: str, response: Any, world: World) -> bool:
    """Beta: Alpha's objects are not found; the admin wants staff; Beta's own pages may
    answer, with Beta's data."""
    status = response.status_code
    if pattern.startswith("admin/"):
        if pattern in ("admin/login/", "admin/logout/"):
            return status in (200, 302)
        return _is_login_redirect(response, "/admin/login/") or status == 405
    if has_parameters(pattern):
        return status in (404, 405)
    if status == 302:
        return world.organization.slug not in response["Location"]
    # 404: the organization switcher refuses an organization one is not a member of.
    return status in (200, 400, 403, 404, 405)


def _nobody_answer_ok(pattern: str, response: Any) -> bool:
    """Nobody: a login page, a redirect to one, or 405 for a method the URL does not take."""
    login = "/admin/login/" if pattern.startswith("admin/") else "/login/"
    if pattern in ("login/", "admin/login/", "logout/", "admin/logout/"):
        return response.status_code in (200, 302, 405)
    return _is_login_redirect(response, login) or response.status_code == 405


def test_it_walks_every_console_url_as_another_organization_and_as_nobody(alpha, beta):
    before = snapshot(alpha)
    console = [p for p in url_patterns() if not p.startswith("v1/") and p not in SKIPPED]
    assert "binaries/<uuid:binary_id>/destroy" in console
    assert "members/<int:membership_id>/remove" in console
    assert any(p.startswith("admin/") for p in console)
    stranger, nobody = Client(), Client()
    data = {**POST_DATA, "organization": alpha.organization.slug}
    checked = 0
    problems: list[str] = []
    for pattern in console:
        for url in fill(pattern, alpha):
            for method in ("GET", "POST"):
                # Logged in afresh each time: the walk passes the logout URLs too.
                stranger.force_login(beta.membership.user)
                as_beta = _request(stranger, method, url, data)
                as_nobody = _request(nobody, method, url, data)
                checked += 2
                where = f"{method} {url} ({pattern})"
                for who, response in (("Beta", as_beta), ("anonymous", as_nobody)):
                    if leaked(alpha, response.body):
                        problems.append(f"{where} as {who}: leaks {leaked(alpha, response.body)}")
                if not _beta_answer_ok(pattern, as_beta, alpha):
                    problems.append(f"{where} as Beta: {as_beta.status_code}")
                if not _nobody_answer_ok(pattern, as_nobody):
                    problems.append(f"{where} as anonymous: {as_nobody.status_code}")
    assert not problems, "\n".join(problems)
    assert checked > 150, checked
    assert snapshot(alpha) == before
    print(f"\nisolation: {len(console)} console URL patterns, {checked} requests, 0 leaks")


def test_it_does_not_switch_to_an_organization_one_is_not_a_member_of(client, alpha, beta):
    client.force_login(beta.membership.user)
    response = client.post("/organizations/switch", {"organization": alpha.organization.slug})
    assert response.status_code == 404
    page = client.get("/artifacts/")
    assert page.status_code == 200
    assert not leaked(alpha, page.content)
    assert beta.artifact.name in page.content.decode()


# --- The API: every operation of the OpenAPI document ----------------------------------------


def openapi_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


PATH_KINDS = {
    "artifacts": "artifact",
    "artifact_versions": "artifact_version",
    "binaries": "binary",
    "signing_keys": "signing_key",
    "binary_signatures": "binary_signature",
}


BODY_VALUES: dict[str, Any] = {
    "name": "isolation",
    "version": "6.6.6",
    "target": "aarch64-linux-gnu",
    "hash": "ab" * 32,
    "size": 3,
    "description": "isolation",
    "signature": "00" * 64,
}
BODY_PRNS = {
    "artifact_prn": "artifact",
    "artifact_version_prn": "artifact_version",
    "binary_prn": "binary",
    "signing_key_prn": "signing_key",
}


def _body_properties(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema.get("properties", {})


def request_for(
    document: dict[str, Any], method: str, path: str, operation: dict[str, Any], world: World
) -> dict[str, Any]:
    """The request: Alpha's PRNs in the path, in query filters and in a body the operation
    takes; `refers` says where Alpha is named."""
    url, refers = path, ""
    if "{prn}" in path:
        kind = PATH_KINDS[path.split("/")[2]]
        prn = world.uploadable.prn if "/parts" in path else world.prn_for(kind)
        url, refers = url.replace("{prn}", prn), "path"
    url = url.replace("{index}", "1")
    query = {}
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] == "query" and (name in BODY_PRNS or name == "object"):
            query[name] = world.prn_for(BODY_PRNS.get(name, "binary"))
            refers = refers or "query"
    body = None
    if "requestBody" in operation:
        fields = _body_properties(document, operation)
        if method == "PATCH":  # a signing key has a name, no description
            body = {"description" if "description" in fields else "name": "isolation"}
        else:
            body = {name: value for name, value in BODY_VALUES.items() if name in fields}
            if "value" in fields:
                body["value"] = public_pem(generate("ed25519"))
            for name, kind in BODY_PRNS.items():
                if name in fields:
                    body[name] = world.prn_for(kind)
                    refers = refers or "body"
    return {"url": url, "query": query, "body": body, "refers": refers}


def content_of(response: Any) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def _send(client: Client, method: str, request: dict[str, Any], **headers: Any) -> Any:
    from urllib.parse import urlencode

    url = request["url"] + (f"?{urlencode(request['query'])}" if request["query"] else "")
    body = b"" if request["body"] is None else json.dumps(request["body"]).encode()
    return client.generic(method, url, body, content_type="application/json", **headers)


def test_it_walks_every_api_operation_as_another_organization_and_as_nobody(client, alpha, beta):
    before = snapshot(alpha)
    document = client.get("/v1/openapi.json").json()
    operations = openapi_operations(document)
    assert len(operations) >= 30
    session = Client()
    session.force_login(beta.membership.user)  # the console's session calls the API too
    problems: list[str] = []
    for method, path, operation in operations:
        request = request_for(document, method, path, operation, alpha)
        where = f"{method} {path} {request['query'] or ''}"
        sent = json.dumps(request)
        for who, response in (
            ("Beta's API key", _send(beta.api.client, method, request)),
            ("Beta's console session", _send(session, method, request)),
        ):
            body = content_of(response)
            if leaked(alpha, body, sent):
                problems.append(f"{where} as {who}: leaks {leaked(alpha, body, sent)}")
            status = response.status_code
            # 409: the second client creating the same name or key as the first.
            expected = {"path": {404}, "body": {404}, "query": {200, 404}}.get(
                request["refers"], {200, 201, 204, 409}
            )
            if status not in expected:
                problems.append(f"{where} as {who}: {status} {body[:300]!r}")
        anonymous = _send(client, method, request)
        if anonymous.status_code != 401 or leaked(alpha, anonymous.content, sent):
            problems.append(f"{where} as anonymous: {anonymous.status_code}")
        else:
            assert anonymous.json()["error"]["code"] == "unauthorized"
    assert not problems, "\n".join(problems)
    assert snapshot(alpha) == before
    print(f"\nisolation: {len(operations)} API operations x 3 clients, 0 leaks")


# --- Upload and download URLs are bound to one part of one binary ---------------------------


def _splice(token: str, other: str) -> list[str]:
    """Tokens made of one token's signed payload and another's signature, and payloads
    changed in place."""
    payload, _, mac = token.rpartition(":")
    other_payload, _, other_mac = other.rpartition(":")
    return [f"{payload}:{other_mac}", f"{other_payload}:{mac}", f"{payload}x:{mac}"]


def _forged_part_token(payload: dict[str, Any]) -> str:
    """A token with the right shape, signed with a key that is not the server's."""
    return signing.Signer(key="not-the-server-key" * 3, salt=tokens.PART_SALT).sign_object(
        payload, compress=True
    )


def _put(client: Client, token: str, body: bytes) -> Any:
    return client.put(
        f"/transfer/parts/{token}", data=body, content_type="application/octet-stream"
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_refuses_an_upload_url_used_for_another_binary(client, backend, alpha, beta):
    mine = random_bytes(5 * MiB + 100)
    theirs = random_bytes(5 * MiB + 100)
    actor = Actor.system("isolation test")
    x = new_binary(alpha.version, actor, mine, target="riscv64-linux-gnu")
    y = new_binary(beta.version, actor, theirs, target="riscv64-linux-gnu")
    x_part = declare(x, 1, mine[: 5 * MiB])
    y_part = declare(y, 1, theirs[: 5 * MiB])
    x_token = x_part.upload_url.rsplit("/", 1)[1]
    y_token = y_part.upload_url.rsplit("/", 1)[1]
    y_listing = [key for key in backend.listing() if str(y.uuid) in key]

    attempts: list[str] = _splice(x_token, y_token)
    forged = {**tokens.read_part_token(x_token), "b": y.uuid.hex}
    attempts.append(_forged_part_token(forged))
    # A download URL's token (another salt) is no upload URL.
    download = downloads.issue_url(
        binary=beta.signed, actor=actor, base_url="http://testserver/", expires_in=None
    )
    attempts.append(download.url.rsplit("/", 1)[1])
    for token in attempts:
        response = _put(client, token, theirs[: 5 * MiB])
        assert response.status_code == 403, (token, response.content)
        assert response.json()["error"]["code"] == "url_tampered"

    # X's URL takes bytes for X's part alone, whatever they are: Y is untouched.
    response = _put(client, x_token, theirs[: 5 * MiB])
    assert response.status_code == 422
    assert response.json()["binary_part"]["state"] == PartState.INVALID_HASH
    assert BinaryPart.objects.get(pk=y_part.part.pk).state == PartState.UPLOADABLE
    assert [key for key in backend.listing() if str(y.uuid) in key] == y_listing

    # Y's URL, once Y's part is declared again, is superseded (409) and writes nothing.
    redeclared = declare(y, 1, theirs[: 5 * MiB])
    response = _put(client, y_token, theirs[: 5 * MiB])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "superseded"
    assert BinaryPart.objects.get(binary=y, index=1).token == redeclared.part.token
    assert BinaryPart.objects.get(binary=y, index=1).state == PartState.UPLOADABLE


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_it_binds_a_presigned_s3_url_to_its_own_upload(backend, version, other_org):
    """S3 checks the signature (moto does not): the signature of one binary's URL never
    matches another binary's key, upload or part number."""
    from urllib.parse import parse_qsl, urlencode

    from tests.factories import ArtifactVersionFactory
    from tests.test_uploads_security import checksum, sigv4_query_signature
    from tests.upload_helpers import put_http

    actor = Actor.system("isolation test")
    mine, theirs = random_bytes(1000), random_bytes(1000)
    x = new_binary(version, actor, mine, target="riscv64-linux-gnu")
    other_version = ArtifactVersionFactory(artifact__organization=other_org)
    y = new_binary(other_version, actor, theirs, target="riscv64-linux-gnu")
    x_url = declare(x, 1, mine).upload_url
    y_url = declare(y, 1, theirs).upload_url
    x_query, y_query = (
        dict(parse_qsl(urlsplit(x_url).query)),
        dict(parse_qsl(urlsplit(y_url).query)),
    )
    x_headers = {"content-length": str(len(mine)), **checksum(sha256(mine))}
    y_headers = {"content-length": str(len(theirs)), **checksum(sha256(theirs))}
    assert sigv4_query_signature(x_url, x_headers) == x_query["X-Amz-Signature"]
    assert sigv4_query_signature(y_url, y_headers) == y_query["X-Amz-Signature"]

    def url(path_of: str, query: dict[str, str]) -> str:
        return urlsplit(path_of)._replace(query=urlencode(query)).geturl()

    spliced = [
        # X's signature on Y's object and upload.
        (url(y_url, {**y_query, "X-Amz-Signature": x_query["X-Amz-Signature"]}), y_headers),
        # X's URL pointed at Y's upload id, or at another part number.
        (url(x_url, {**x_query, "uploadId": y_query["uploadId"]}), x_headers),
        (url(x_url, {**x_query, "partNumber": "2"}), x_headers),
        # X's URL with Y's bytes (and Y's checksum).
        (x_url, y_headers),
    ]
    for candidate, headers in spliced:
        query = dict(parse_qsl(urlsplit(candidate).query))
        assert sigv4_query_signature(candidate, headers) != query["X-Amz-Signature"], candidate
    # The URLs as issued work, each for its own upload.
    assert put_http(x_url, mine, sha256(mine)).status_code == 200
    assert put_http(y_url, theirs, sha256(theirs)).status_code == 200
    x_parts = backend.check_parts(Binary.objects.get(pk=x.pk), list(x.parts.all()))
    y_parts = backend.check_parts(Binary.objects.get(pk=y.pk), list(y.parts.all()))
    assert x_parts[1].state == y_parts[1].state == PartState.VALID


@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_it_binds_a_download_url_to_its_own_binary(client, backend, alpha, beta):
    actor = Actor.system("isolation test")
    a, b = alpha.signed, beta.signed
    url_a = downloads.issue_url(binary=a, actor=actor, base_url="http://testserver/").url
    url_b = downloads.issue_url(binary=b, actor=actor, base_url="http://testserver/").url
    token_a, token_b = url_a.rsplit("/", 1)[1], url_b.rsplit("/", 1)[1]
    assert client.get(f"/transfer/binaries/{token_a}").getvalue() == alpha.signed_data
    for token in _splice(token_a, token_b):
        response = client.get(f"/transfer/binaries/{token}")
        assert response.status_code == 403, token
        assert response.json()["error"]["code"] == "url_tampered"
    forged = signing.Signer(key="not-the-server-key" * 3, salt=tokens.DOWNLOAD_SALT)
    payload = {**tokens.read_download_token(token_a), "b": b.uuid.hex}
    assert client.get(f"/transfer/binaries/{forged.sign_object(payload)}").status_code == 403
    # An upload URL's token is no download URL.
    part = declare(alpha.uploadable, 1, b"abc")
    response = client.get(f"/transfer/binaries/{part.upload_url.rsplit('/', 1)[1]}")
    assert response.status_code == 403
    # A's URL stops when A is destroyed; B's goes on.
    moves.destroy(binary=a, actor=actor, reason="isolation test")
    assert client.get(f"/transfer/binaries/{token_a}").status_code == 410
    assert client.get(f"/transfer/binaries/{token_b}").getvalue() == beta.signed_data
