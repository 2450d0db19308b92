"""Reads. Every query is scoped to one organization: another organization's rows are 'not found'."""

from typing import TypeVar

from django.db.models import Model, QuerySet

from binaries.errors import InvalidInput, NotFound
from binaries.models import Artifact, ArtifactVersion, Binary
from peridio_console.models import Organization
from peridio_console.prn import MalformedPRN, parse_prn

M = TypeVar("M", bound=Model)

NOUNS = {"artifact": "artifact", "artifact_version": "artifact version", "binary": "binary"}


def parse_scoped_prn(organization: Organization, raw: str, type_: str, field: str = "prn"):
    """The uuid of a PRN of the given type; a PRN of another organization is 'not found'."""
    try:
        prn = parse_prn(raw, type_)
    except MalformedPRN as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from None
    if prn.organization != organization.uuid:
        raise NotFound(f"No {NOUNS.get(type_, type_)} {raw} in this organization.", field=field)
    return prn.id


def _get(queryset: QuerySet[M], organization: Organization, raw: str, type_: str, field: str) -> M:
    uid = parse_scoped_prn(organization, raw, type_, field)
    obj = queryset.filter(uuid=uid).first()
    if obj is None:
        raise NotFound(f"No {NOUNS.get(type_, type_)} {raw} in this organization.", field=field)
    return obj


def artifacts(organization: Organization) -> QuerySet[Artifact]:
    return Artifact.objects.filter(organization=organization).select_related("organization")


def artifact_versions(organization: Organization) -> QuerySet[ArtifactVersion]:
    return ArtifactVersion.objects.filter(organization=organization).select_related(
        "organization", "artifact"
    )


def binaries(organization: Organization) -> QuerySet[Binary]:
    return Binary.objects.filter(organization=organization).select_related(
        "organization", "artifact_version", "artifact_version__artifact"
    )


def get_artifact(organization: Organization, prn: str, field: str = "prn") -> Artifact:
    return _get(artifacts(organization), organization, prn, "artifact", field)


def get_artifact_version(
    organization: Organization, prn: str, field: str = "prn"
) -> ArtifactVersion:
    return _get(artifact_versions(organization), organization, prn, "artifact_version", field)


def get_binary(organization: Organization, prn: str, field: str = "prn") -> Binary:
    return _get(binaries(organization), organization, prn, "binary", field)
