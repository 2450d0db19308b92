import pytest
from django.test import Client
from django.utils import timezone

from binaries.api.auth import ApiContext, authenticate_header, require_role
from binaries.models import BinaryEvent
from peridio_console.accounts.models import ApiKey, Membership, Role
from peridio_console.accounts.services import api_key_create
from peridio_console.core.errors import PermissionDenied
from tests.api_helpers import ApiClient, error_of
from tests.factories import (
    ApiKeyFactory,
    ArtifactFactory,
    ArtifactVersionFactory,
    MembershipFactory,
)

HASH = "sha256:" + "ab" * 32


def _get(header: str | None):
    client = Client() if header is None else Client(HTTP_AUTHORIZATION=header)
    return client.get("/v1/artifacts")


def test_it_accepts_bearer_and_token_schemes(engineer_api):
    for scheme in ("Bearer", "Token", "bearer", "token"):
        response = _get(f"{scheme} {engineer_api.secret}")
        assert response.status_code == 200, scheme
        assert response.json() == {"artifacts": [], "next_page": None}


def test_it_refuses_a_request_without_a_key(db):
    response = _get(None)
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "unauthorized"
    assert "Authorization: Bearer" in error["message"]


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "pdo_abc_def", "Token\tx y"],
)
def test_it_refuses_malformed_headers(db, header):
    response = _get(header)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


@pytest.mark.parametrize(
    "key",
    [
        "pdo_00000000_unknownsecret",
        "nope",
        "pdo__",
        "pdo_\x00_x",
        "pdo_" + "a" * 5000,
        "xyz_12345678_secret",
    ],
)
def test_it_refuses_unknown_keys(db, key):
    response = _get(f"Bearer {key}")
    assert response.status_code == 401
    assert "not valid" in error_of(response)["message"]


def test_it_refuses_a_key_with_the_wrong_secret(engineer_api):
    response = _get(f"Bearer {engineer_api.secret[:-2]}xx")
    assert response.status_code == 401


def test_it_refuses_a_revoked_key(engineer_api):
    ApiKey.objects.update(revoked_at=timezone.now())
    response = _get(f"Bearer {engineer_api.secret}")
    assert response.status_code == 401
    assert "revoked" in error_of(response)["message"]


def test_it_refuses_the_key_of_a_member_who_left(engineer_api):
    Membership.objects.filter(pk=engineer_api.membership.pk).delete()
    response = _get(f"Bearer {engineer_api.secret}")
    assert response.status_code == 401
    assert "no longer a member" in error_of(response)["message"]


def test_it_accepts_keys_whose_secret_contains_underscores(engineer_membership):
    # About half of all generated secrets contain "_"; every one of them must work.
    secrets = [
        api_key_create(organization=engineer_membership.organization, user=engineer_membership.user)
        for _ in range(12)
    ]
    with_underscore = [secret for _, secret in secrets if secret.count("_") > 2]
    assert with_underscore, "expected at least one secret with an underscore in 12"
    for secret in with_underscore:
        assert _get(f"Bearer {secret}").status_code == 200


def test_it_takes_the_organization_from_the_key(engineer_api, outsider_api):
    ArtifactFactory(organization=engineer_api.organization, name="ours")
    ArtifactFactory(organization=outsider_api.organization, name="theirs")
    names = [a["name"] for a in engineer_api.get("/artifacts").json()["artifacts"]]
    assert names == ["ours"]


def test_it_lets_a_viewer_read(viewer_api):
    ArtifactFactory(organization=viewer_api.organization)
    assert viewer_api.get("/artifacts").status_code == 200
    assert viewer_api.get("/artifact_versions").status_code == 200
    assert viewer_api.get("/binaries").status_code == 200


def _write_requests(org):
    version = ArtifactVersionFactory(artifact__organization=org)
    artifact_prn, version_prn = version.artifact.prn, version.prn
    binary_prn = f"{org.prn}:binary:00000000-0000-4000-8000-000000000000"
    return [
        ("post", "/artifacts", {"name": "new"}),
        ("patch", f"/artifacts/{artifact_prn}", {"description": "x"}),
        ("delete", f"/artifacts/{artifact_prn}", None),
        ("post", "/artifact_versions", {"artifact_prn": artifact_prn, "version": "9"}),
        ("patch", f"/artifact_versions/{version_prn}", {"description": "x"}),
        ("delete", f"/artifact_versions/{version_prn}", None),
        ("post", "/binaries", {"artifact_version_prn": version_prn, "target": "universal"}),
        ("patch", f"/binaries/{binary_prn}", {"description": "x"}),
        ("delete", f"/binaries/{binary_prn}", None),
    ]


def test_it_refuses_every_write_to_a_viewer(viewer_api):
    for method, path, body in _write_requests(viewer_api.organization):
        response = getattr(viewer_api, method)(path, body)
        assert response.status_code == 403, (method, path, response.content)
        error = error_of(response)
        assert error["code"] == "forbidden"
        assert "needs the engineer or admin role" in error["message"]
        assert "a viewer in" in error["message"]


def test_it_lets_an_admin_write(admin_api):
    assert admin_api.post("/artifacts", {"name": "by-admin"}).status_code == 201


def test_it_records_the_api_key_as_the_actor(engineer_api, version):
    response = engineer_api.post(
        "/binaries", {"artifact_version_prn": version.prn, "target": "universal", "hash": HASH}
    )
    assert response.status_code == 201
    event = BinaryEvent.objects.get()
    assert event.actor_api_key is not None
    assert event.actor_user == engineer_api.membership.user
    assert f"API key {event.actor_api_key.prefix}" in event.actor_label


def test_it_requires_admin_for_admin_work(org):
    engineer = MembershipFactory(organization=org, role=Role.ENGINEER)
    secret = ApiKeyFactory(organization=org, user=engineer.user).secret
    context = authenticate_header(f"Bearer {secret}")
    assert isinstance(context, ApiContext)
    assert context.role == Role.ENGINEER
    require_role(context, Role.ENGINEER, "creating binaries")
    with pytest.raises(PermissionDenied, match="Managing API keys needs the admin role"):
        require_role(context, Role.ADMIN, "managing API keys")


def test_it_serves_the_schema_and_docs_without_a_key(db):
    client = Client()
    schema = client.get("/v1/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/v1/artifacts", "/v1/artifact_versions", "/v1/binaries", "/v1/binaries/{prn}"} <= set(
        paths
    )
    body = paths["/v1/binaries"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("BinaryCreateIn")
    assert client.get("/v1/docs").status_code == 200


def test_it_answers_unknown_api_paths_in_the_error_shape(engineer_api):
    response = engineer_api.client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_it_touches_last_used_at(engineer_api):
    assert engineer_api.get("/artifacts").status_code == 200
    assert ApiKey.objects.get().last_used_at is not None


def test_it_keeps_keys_of_other_members_apart(engineer_api, viewer_membership):
    viewer = ApiClient.for_membership(viewer_membership)
    assert viewer.post("/artifacts", {"name": "x"}).status_code == 403
    assert engineer_api.post("/artifacts", {"name": "x"}).status_code == 201
