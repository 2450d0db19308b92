"""Reads are scoped to one organization: another organization's rows are 'not found'."""

import uuid

import pytest

from binaries import selectors
from peridio_console.core.errors import InvalidInput, NotFound
from peridio_console.core.prn import format_prn
from tests.factories import (
    ArtifactFactory,
    ArtifactVersionFactory,
    BinaryFactory,
    OrganizationFactory,
)

GETTERS = {
    "artifact": selectors.get_artifact,
    "artifact_version": selectors.get_artifact_version,
    "binary": selectors.get_binary,
}


@pytest.fixture
def mine(org):
    artifact = ArtifactFactory(organization=org)
    version = ArtifactVersionFactory(artifact=artifact)
    binary = BinaryFactory(artifact_version=version)
    return {"artifact": artifact, "artifact_version": version, "binary": binary}


@pytest.fixture
def theirs(other_org):
    artifact = ArtifactFactory(organization=other_org)
    version = ArtifactVersionFactory(artifact=artifact)
    binary = BinaryFactory(artifact_version=version)
    return {"artifact": artifact, "artifact_version": version, "binary": binary}


@pytest.mark.parametrize("type_", GETTERS)
def test_it_gets_an_object_of_the_organization_by_prn(org, mine, theirs, type_):
    obj = mine[type_]

    found = GETTERS[type_](org, obj.prn)

    assert found == obj
    assert found.organization == org


@pytest.mark.parametrize("type_", GETTERS)
def test_it_does_not_find_another_organization_s_object(org, mine, theirs, type_):
    other = theirs[type_]

    with pytest.raises(NotFound) as excinfo:
        GETTERS[type_](org, other.prn)

    assert excinfo.value.status == 404
    assert other.prn in excinfo.value.message
    assert excinfo.value.message.endswith("in this organization.")


@pytest.mark.parametrize("type_", GETTERS)
def test_it_does_not_find_another_organization_s_object_under_its_own_org_uuid(
    org, mine, theirs, type_
):
    # A PRN forged with our organization's uuid and the other's object uuid.
    forged = format_prn(org.uuid, type_, theirs[type_].uuid)

    with pytest.raises(NotFound, match="in this organization"):
        GETTERS[type_](org, forged)


@pytest.mark.parametrize("type_", GETTERS)
def test_it_does_not_find_an_object_that_does_not_exist(org, mine, type_):
    with pytest.raises(NotFound):
        GETTERS[type_](org, format_prn(org.uuid, type_, uuid.uuid4()))


@pytest.mark.parametrize("type_", GETTERS)
def test_it_calls_a_malformed_prn_invalid_input_naming_the_field(org, mine, type_):
    with pytest.raises(InvalidInput) as excinfo:
        GETTERS[type_](org, "prn:1:nope", field="binary_prn")

    assert excinfo.value.field == "binary_prn"
    assert excinfo.value.message.startswith("binary_prn: ")
    assert excinfo.value.status == 400


def test_it_refuses_a_prn_of_the_wrong_type(org, mine):
    with pytest.raises(InvalidInput, match="is a PRN of type artifact; expected a binary PRN"):
        selectors.get_binary(org, mine["artifact"].prn)


def test_it_lists_only_the_organization_s_rows(org, other_org, mine, theirs):
    assert list(selectors.artifacts(org)) == [mine["artifact"]]
    assert list(selectors.artifact_versions(org)) == [mine["artifact_version"]]
    assert list(selectors.binaries(org)) == [mine["binary"]]
    assert list(selectors.artifacts(other_org)) == [theirs["artifact"]]
    assert list(selectors.artifact_versions(other_org)) == [theirs["artifact_version"]]
    assert list(selectors.binaries(other_org)) == [theirs["binary"]]


def test_it_lists_nothing_for_an_organization_without_rows(mine, theirs):
    empty = OrganizationFactory()

    assert not selectors.artifacts(empty).exists()
    assert not selectors.artifact_versions(empty).exists()
    assert not selectors.binaries(empty).exists()
