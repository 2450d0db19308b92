"""Artifacts and their versions."""

from django.http import HttpRequest
from ninja import Query, Router, Status

from binaries import selectors, services
from binaries.api.auth import api_context, writer
from binaries.api.schemas import (
    ERRORS,
    ArtifactCreateIn,
    ArtifactEnvelope,
    ArtifactList,
    ArtifactUpdateIn,
    ArtifactVersionCreateIn,
    ArtifactVersionEnvelope,
    ArtifactVersionList,
    ArtifactVersionListParams,
    ArtifactVersionUpdateIn,
    ListParams,
    fields_set,
    list_body,
)
from binaries.serializers import ArtifactOut, ArtifactVersionOut

artifacts = Router(tags=["artifacts"])


@artifacts.post("", response={201: ArtifactEnvelope, **ERRORS})
def create_artifact(request: HttpRequest, payload: ArtifactCreateIn) -> Status[dict]:
    context = writer(request, "creating artifacts")
    artifact = services.artifact_create(
        organization=context.organization,
        actor=context.actor,
        name=payload.name,
        description=payload.description,
        custom_metadata=payload.custom_metadata,
    )
    return Status(201, {"artifact": ArtifactOut.from_model(artifact)})


@artifacts.get("", response={200: ArtifactList, **ERRORS})
def list_artifacts(request: HttpRequest, params: Query[ListParams]) -> dict:
    """Oldest first unless order=desc. Search keys: name, description, prn, created_at,
    inserted_at, updated_at."""
    organization = api_context(request).organization
    queryset = selectors.artifact_list(organization, search=params.search)
    return list_body(
        "artifacts", queryset, params, ArtifactOut.from_model, organization=organization
    )


@artifacts.get("/{prn}", response={200: ArtifactEnvelope, **ERRORS})
def get_artifact(request: HttpRequest, prn: str) -> dict:
    artifact = selectors.get_artifact(api_context(request).organization, prn)
    return {"artifact": ArtifactOut.from_model(artifact)}


@artifacts.patch("/{prn}", response={200: ArtifactEnvelope, **ERRORS})
def update_artifact(request: HttpRequest, prn: str, payload: ArtifactUpdateIn) -> dict:
    context = writer(request, "changing artifacts")
    artifact = selectors.get_artifact(context.organization, prn)
    artifact = services.artifact_update(
        artifact=artifact, actor=context.actor, **fields_set(payload)
    )
    return {"artifact": ArtifactOut.from_model(artifact)}


@artifacts.delete("/{prn}", response={204: None, **ERRORS})
def delete_artifact(request: HttpRequest, prn: str) -> Status[None]:
    context = writer(request, "deleting artifacts")
    services.artifact_delete(
        artifact=selectors.get_artifact(context.organization, prn), actor=context.actor
    )
    return Status(204, None)


# --- Artifact versions ------------------------------------------------------------------

artifact_versions = Router(tags=["artifact_versions"])


@artifact_versions.post("", response={201: ArtifactVersionEnvelope, **ERRORS})
def create_artifact_version(request: HttpRequest, payload: ArtifactVersionCreateIn) -> Status[dict]:
    context = writer(request, "creating artifact versions")
    artifact = selectors.get_artifact(context.organization, payload.artifact_prn, "artifact_prn")
    version = services.artifact_version_create(
        artifact=artifact,
        actor=context.actor,
        version=payload.version,
        description=payload.description,
        custom_metadata=payload.custom_metadata,
    )
    return Status(201, {"artifact_version": ArtifactVersionOut.from_model(version)})


@artifact_versions.get("", response={200: ArtifactVersionList, **ERRORS})
def list_artifact_versions(request: HttpRequest, params: Query[ArtifactVersionListParams]) -> dict:
    """Oldest first unless order=desc. Search keys: artifact_prn, version, description, prn,
    created_at, inserted_at, updated_at."""
    organization = api_context(request).organization
    artifact = None
    if params.artifact_prn:
        artifact = selectors.get_artifact(organization, params.artifact_prn, "artifact_prn")
    queryset = selectors.artifact_version_list(
        organization, artifact=artifact, search=params.search
    )
    return list_body(
        "artifact_versions",
        queryset,
        params,
        ArtifactVersionOut.from_model,
        organization=organization,
    )


@artifact_versions.get("/{prn}", response={200: ArtifactVersionEnvelope, **ERRORS})
def get_artifact_version(request: HttpRequest, prn: str) -> dict:
    version = selectors.get_artifact_version(api_context(request).organization, prn)
    return {"artifact_version": ArtifactVersionOut.from_model(version)}


@artifact_versions.patch("/{prn}", response={200: ArtifactVersionEnvelope, **ERRORS})
def update_artifact_version(
    request: HttpRequest, prn: str, payload: ArtifactVersionUpdateIn
) -> dict:
    context = writer(request, "changing artifact versions")
    version = selectors.get_artifact_version(context.organization, prn)
    version = services.artifact_version_update(
        artifact_version=version, actor=context.actor, **fields_set(payload)
    )
    return {"artifact_version": ArtifactVersionOut.from_model(version)}


@artifact_versions.delete("/{prn}", response={204: None, **ERRORS})
def delete_artifact_version(request: HttpRequest, prn: str) -> Status[None]:
    context = writer(request, "deleting artifact versions")
    version = selectors.get_artifact_version(context.organization, prn)
    services.artifact_version_delete(artifact_version=version, actor=context.actor)
    return Status(204, None)
