import re

import pytest

from binaries.models import Artifact, ArtifactVersion
from tests.api_helpers import error_of
from tests.factories import (
    ArtifactFactory,
    ArtifactVersionFactory,
    BinaryFactory,
    binary_in_state,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MISSING_UUID = "00000000-0000-4000-8000-000000000000"


# --- Artifacts --------------------------------------------------------------------------


def test_it_creates_an_artifact(engineer_api):
    response = engineer_api.post(
        "/artifacts",
        {"name": "edge-firmware", "description": "Gateway", "custom_metadata": {"team": "os"}},
    )
    assert response.status_code == 201
    data = response.json()["artifact"]
    artifact = Artifact.objects.get()
    assert data == {
        "prn": artifact.prn,
        "organization_prn": engineer_api.organization.prn,
        "name": "edge-firmware",
        "description": "Gateway",
        "custom_metadata": {"team": "os"},
        "created_at": data["created_at"],
        "inserted_at": data["created_at"],
        "updated_at": data["updated_at"],
    }
    assert TIMESTAMP.match(data["created_at"]) and TIMESTAMP.match(data["updated_at"])


def test_it_refuses_a_duplicate_artifact_name(engineer_api):
    ArtifactFactory(organization=engineer_api.organization, name="fw")
    response = engineer_api.post("/artifacts", {"name": "fw"})
    assert response.status_code == 409
    error = error_of(response)
    assert error == {
        "code": "already_exists",
        "field": "name",
        "message": "An artifact named 'fw' already exists in this organization.",
    }


def test_it_allows_the_same_artifact_name_in_another_organization(engineer_api, other_org):
    ArtifactFactory(organization=other_org, name="fw")
    assert engineer_api.post("/artifacts", {"name": "fw"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "name", "name is required."),
        ({"name": ""}, "name", "non-empty text"),
        ({"name": 7}, "name", "name must be text; got 7."),
        ({"name": "x" * 129}, "name", "at most 128 characters"),
        ({"name": "x", "description": "d" * 257}, "description", "at most 256 characters"),
        ({"name": "x", "custom_metadata": [1]}, "custom_metadata", "a JSON object"),
        ({"name": "x", "colour": "red"}, "colour", "it takes: name, description, custom_metadata"),
    ],
)
def test_it_explains_invalid_artifacts(engineer_api, body, field, words):
    response = engineer_api.post("/artifacts", body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["field"] == field
    assert words in error["message"]


def test_it_lists_artifacts(engineer_api):
    first = ArtifactFactory(organization=engineer_api.organization, name="a")
    ArtifactFactory(organization=engineer_api.organization, name="b")
    body = engineer_api.get("/artifacts").json()
    assert [a["name"] for a in body["artifacts"]] == ["a", "b"]
    assert body["artifacts"][0]["prn"] == first.prn
    assert body["next_page"] is None


def test_it_searches_artifacts(engineer_api):
    ArtifactFactory(organization=engineer_api.organization, name="edge-firmware")
    ArtifactFactory(organization=engineer_api.organization, name="camera-model")
    body = engineer_api.get("/artifacts", search="name-FIRM").json()
    assert [a["name"] for a in body["artifacts"]] == ["edge-firmware"]


def test_it_gets_an_artifact(engineer_api):
    artifact = ArtifactFactory(organization=engineer_api.organization)
    response = engineer_api.get(f"/artifacts/{artifact.prn}")
    assert response.status_code == 200
    assert response.json()["artifact"]["name"] == artifact.name


def test_it_answers_404_for_a_missing_artifact(engineer_api):
    prn = f"{engineer_api.organization.prn}:artifact:{MISSING_UUID}"
    response = engineer_api.get(f"/artifacts/{prn}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_it_answers_400_for_a_malformed_artifact_prn(engineer_api):
    response = engineer_api.get("/artifacts/prn:1:nope")
    assert response.status_code == 400
    error = error_of(response)
    assert error["field"] == "prn"
    assert "expected prn:1:<organization-uuid>" in error["message"]


def test_it_refuses_a_prn_of_another_type(engineer_api, version):
    response = engineer_api.get(f"/artifacts/{version.prn}")
    assert response.status_code == 400
    assert "artifact PRN" in error_of(response)["message"]


def test_it_updates_an_artifact(engineer_api):
    artifact = ArtifactFactory(organization=engineer_api.organization, description="old")
    response = engineer_api.patch(
        f"/artifacts/{artifact.prn}", {"name": "renamed", "custom_metadata": {"a": 1}}
    )
    assert response.status_code == 200
    data = response.json()["artifact"]
    assert (data["name"], data["description"], data["custom_metadata"]) == (
        "renamed",
        "old",
        {"a": 1},
    )
    artifact.refresh_from_db()
    assert artifact.name == "renamed"
    assert artifact.updated_at > artifact.created_at


def test_it_clears_a_description_with_null(engineer_api):
    artifact = ArtifactFactory(organization=engineer_api.organization, description="old")
    response = engineer_api.patch(f"/artifacts/{artifact.prn}", {"description": None})
    assert response.json()["artifact"]["description"] == ""


def test_it_refuses_renaming_onto_another_artifact(engineer_api):
    ArtifactFactory(organization=engineer_api.organization, name="taken")
    artifact = ArtifactFactory(organization=engineer_api.organization, name="mine")
    response = engineer_api.patch(f"/artifacts/{artifact.prn}", {"name": "taken"})
    assert response.status_code == 409
    assert error_of(response)["field"] == "name"


def test_it_deletes_an_artifact_with_its_empty_versions(engineer_api):
    version = ArtifactVersionFactory(artifact__organization=engineer_api.organization)
    response = engineer_api.delete(f"/artifacts/{version.artifact.prn}")
    assert response.status_code == 204
    assert response.content == b""
    assert not Artifact.objects.exists()
    assert not ArtifactVersion.objects.exists()


def test_it_refuses_to_delete_an_artifact_with_live_binaries(engineer_api, version):
    binary = BinaryFactory(artifact_version=version, target="arm-linux-gnueabihf")
    response = engineer_api.delete(f"/artifacts/{version.artifact.prn}")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "has_binaries"
    assert binary.prn in error["message"]
    assert "destroy it first" in error["message"]
    assert Artifact.objects.exists()


def test_it_refuses_to_delete_an_artifact_whose_binaries_are_destroyed(engineer_api, version):
    binary_in_state("destroyed", artifact_version=version)
    response = engineer_api.delete(f"/artifacts/{version.artifact.prn}")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "has_destroyed_binaries"
    assert "kept for the audit trail" in error["message"]


# --- Artifact versions ------------------------------------------------------------------


def test_it_creates_an_artifact_version(engineer_api):
    artifact = ArtifactFactory(organization=engineer_api.organization)
    response = engineer_api.post(
        "/artifact_versions", {"artifact_prn": artifact.prn, "version": "1.4.2"}
    )
    assert response.status_code == 201
    data = response.json()["artifact_version"]
    version = ArtifactVersion.objects.get()
    assert data == {
        "prn": version.prn,
        "artifact_prn": artifact.prn,
        "organization_prn": engineer_api.organization.prn,
        "version": "1.4.2",
        "description": "",
        "custom_metadata": {},
        "created_at": data["created_at"],
        "inserted_at": data["created_at"],
        "updated_at": data["updated_at"],
    }


def test_it_refuses_a_duplicate_version(engineer_api, version):
    response = engineer_api.post(
        "/artifact_versions", {"artifact_prn": version.artifact.prn, "version": version.version}
    )
    assert response.status_code == 409
    assert error_of(response)["field"] == "version"


def test_it_needs_artifact_prn_and_version(engineer_api):
    response = engineer_api.post("/artifact_versions", {"version": "1"})
    assert response.status_code == 400
    assert error_of(response) == {
        "code": "invalid",
        "field": "artifact_prn",
        "message": "artifact_prn is required.",
    }


def test_it_answers_404_for_a_version_of_a_missing_artifact(engineer_api):
    prn = f"{engineer_api.organization.prn}:artifact:{MISSING_UUID}"
    response = engineer_api.post("/artifact_versions", {"artifact_prn": prn, "version": "1"})
    assert response.status_code == 404
    assert error_of(response)["field"] == "artifact_prn"


def test_it_lists_versions_of_one_artifact(engineer_api):
    mine = ArtifactVersionFactory(artifact__organization=engineer_api.organization)
    ArtifactVersionFactory(artifact__organization=engineer_api.organization)
    everything = engineer_api.get("/artifact_versions").json()["artifact_versions"]
    assert len(everything) == 2
    body = engineer_api.get("/artifact_versions", artifact_prn=mine.artifact.prn).json()
    assert [v["prn"] for v in body["artifact_versions"]] == [mine.prn]


def test_it_searches_versions(engineer_api):
    artifact = ArtifactFactory(organization=engineer_api.organization)
    ArtifactVersionFactory(artifact=artifact, version="1.0.0")
    ArtifactVersionFactory(artifact=artifact, version="2.0.0-rc1")
    body = engineer_api.get("/artifact_versions", search="version~rc").json()
    assert [v["version"] for v in body["artifact_versions"]] == ["2.0.0-rc1"]


def test_it_gets_updates_and_deletes_a_version(engineer_api, version):
    assert engineer_api.get(f"/artifact_versions/{version.prn}").status_code == 200
    response = engineer_api.patch(
        f"/artifact_versions/{version.prn}", {"description": "LTS", "custom_metadata": {"x": 1}}
    )
    assert response.status_code == 200
    assert response.json()["artifact_version"]["description"] == "LTS"
    assert engineer_api.delete(f"/artifact_versions/{version.prn}").status_code == 204
    assert not ArtifactVersion.objects.exists()
    assert Artifact.objects.exists()


def test_it_refuses_to_change_a_version_string(engineer_api, version):
    response = engineer_api.patch(f"/artifact_versions/{version.prn}", {"version": "9"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["field"] == "version"
    assert "it takes: description, custom_metadata" in error["message"]


def test_it_refuses_to_delete_a_version_with_binaries(engineer_api, version):
    BinaryFactory(artifact_version=version)
    BinaryFactory(artifact_version=version)
    response = engineer_api.delete(f"/artifact_versions/{version.prn}")
    assert response.status_code == 409
    assert "still has 2 binaries that are not destroyed" in error_of(response)["message"]
    assert ArtifactVersion.objects.exists()


def test_it_refuses_to_delete_a_version_whose_binaries_are_destroyed(engineer_api, version):
    binary_in_state("destroyed", artifact_version=version)
    response = engineer_api.delete(f"/artifact_versions/{version.prn}")
    assert response.status_code == 409
    assert error_of(response)["code"] == "has_destroyed_binaries"


# --- Another organization's objects are not found -----------------------------------------


def _probes(org):
    version = ArtifactVersionFactory(artifact__organization=org)
    artifact = version.artifact
    return [
        ("get", f"/artifacts/{artifact.prn}", None),
        ("patch", f"/artifacts/{artifact.prn}", {"description": "mine now"}),
        ("delete", f"/artifacts/{artifact.prn}", None),
        ("post", "/artifact_versions", {"artifact_prn": artifact.prn, "version": "x"}),
        ("get", "/artifact_versions?artifact_prn=" + artifact.prn, None),
        ("get", f"/artifact_versions/{version.prn}", None),
        ("patch", f"/artifact_versions/{version.prn}", {"description": "mine now"}),
        ("delete", f"/artifact_versions/{version.prn}", None),
    ]


def test_it_answers_404_to_another_organization(outsider_api, org):
    for method, path, body in _probes(org):
        if method == "get":
            response = outsider_api.client.get(f"/v1{path}")
        else:
            response = getattr(outsider_api, method)(path, body)
        assert response.status_code == 404, (method, path, response.content)
        assert error_of(response)["code"] == "not_found"
    assert Artifact.objects.get().description == ""
    assert ArtifactVersion.objects.count() == 1


def test_it_hides_other_organizations_from_lists(outsider_api, org):
    ArtifactVersionFactory(artifact__organization=org)
    assert outsider_api.get("/artifacts").json()["artifacts"] == []
    assert outsider_api.get("/artifact_versions").json()["artifact_versions"] == []
