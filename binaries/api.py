"""The JSON API under /v1, in the shape of the hosted platform's API.

One NinjaAPI, one router per resource. To add endpoints (binary parts, signatures, download
URLs), define them on the resource's router (or a new router) above the mounting block at the
bottom of this file. Handlers stay thin: authenticate (api_auth), read through selectors,
write through services, answer with the serializers' shapes.
"""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from ninja import NinjaAPI, Query, Router, Status
from ninja.errors import ValidationError, ValidationErrorContext
from pydantic import BaseModel

from binaries import api_audit, api_parts, api_signing, selectors, serializers, services
from binaries.api_auth import ApiKeyAuth, ConsoleSessionAuth, api_context, writer
from binaries.api_errors import JSONBodyParser, install_error_handlers
from binaries.api_schemas import (
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
    BinaryCreateIn,
    BinaryDestroyIn,
    BinaryEnvelope,
    BinaryList,
    BinaryListParams,
    BinaryUpdateIn,
    ListParams,
)


class PeridioAPI(NinjaAPI):
    def validation_error_from_error_contexts(
        self, error_contexts: list[ValidationErrorContext]
    ) -> ValidationError:
        """Keep what came (ninja drops it) and, for unknown fields, the fields accepted."""
        errors: list[dict[str, Any]] = []
        for context in error_contexts:
            model = context.model
            for error in context.pydantic_validation_error.errors(include_url=False):
                item: dict[str, Any] = dict(error)
                loc = model.__ninja_flatten_map_reverse__.get(item["loc"], item["loc"])
                item["loc"] = (model.__ninja_param_source__, *loc)
                if isinstance((item.get("ctx") or {}).get("error"), Exception):
                    item["ctx"] = {**item["ctx"], "error": str(item["ctx"]["error"])}
                if item["type"] == "extra_forbidden":
                    item["accepted"] = _accepted_fields(model, item["loc"])
                errors.append(item)
        return ValidationError(errors)


def _accepted_fields(model: Any, loc: tuple[Any, ...]) -> list[str]:
    param = model.model_fields.get(loc[1]) if len(loc) > 1 else None
    schema = getattr(param, "annotation", None)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return list(schema.model_fields)
    return []


api = PeridioAPI(
    title="Peridio Console API",
    version="1",
    description="Artifacts, artifact versions and binaries. Authenticate with "
    "`Authorization: Bearer <API key>`.",
    urls_namespace="api",
    auth=[ConsoleSessionAuth(), ApiKeyAuth()],
    parser=JSONBodyParser(),
    openapi_url="/openapi.json",
    docs_url="/docs",
    docs_decorator=require_safe,  # the schema and the docs are read-only: GET and HEAD
)
install_error_handlers(api)


def _changes(payload: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body named, null included (null clears a description)."""
    return {name: getattr(payload, name) for name in payload.model_fields_set}


# --- Artifacts --------------------------------------------------------------------------

artifacts = Router(tags=["artifacts"])


@artifacts.post("", response={201: ArtifactEnvelope, **ERRORS})
def create_artifact(request: HttpRequest, payload: ArtifactCreateIn) -> Status[dict]:
    context = writer(request, "creating artifacts")
    artifact = services.artifact_create(
        organization=context.organization,
        name=payload.name,
        description=payload.description,
        custom_metadata=payload.custom_metadata,
    )
    return Status(201, {"artifact": serializers.artifact_data(artifact)})


@artifacts.get("", response={200: ArtifactList, **ERRORS})
def list_artifacts(request: HttpRequest, params: Query[ListParams]) -> dict:
    """Oldest first unless order=desc. Search keys: name, description, prn, created_at,
    inserted_at, updated_at."""
    organization = api_context(request).organization
    queryset = selectors.artifact_list(organization, search=params.search)
    rows, next_page = selectors.list_page(
        queryset,
        organization,
        list_name="artifacts",
        limit=params.limit,
        order=params.order,
        page=params.page,
    )
    return {"artifacts": [serializers.artifact_data(a) for a in rows], "next_page": next_page}


@artifacts.get("/{prn}", response={200: ArtifactEnvelope, **ERRORS})
def get_artifact(request: HttpRequest, prn: str) -> dict:
    artifact = selectors.get_artifact(api_context(request).organization, prn)
    return {"artifact": serializers.artifact_data(artifact)}


@artifacts.patch("/{prn}", response={200: ArtifactEnvelope, **ERRORS})
def update_artifact(request: HttpRequest, prn: str, payload: ArtifactUpdateIn) -> dict:
    context = writer(request, "changing artifacts")
    artifact = selectors.get_artifact(context.organization, prn)
    artifact = services.artifact_update(artifact=artifact, **_changes(payload))
    return {"artifact": serializers.artifact_data(artifact)}


@artifacts.delete("/{prn}", response={204: None, **ERRORS})
def delete_artifact(request: HttpRequest, prn: str) -> Status[None]:
    context = writer(request, "deleting artifacts")
    services.artifact_delete(artifact=selectors.get_artifact(context.organization, prn))
    return Status(204, None)


# --- Artifact versions ------------------------------------------------------------------

artifact_versions = Router(tags=["artifact_versions"])


@artifact_versions.post("", response={201: ArtifactVersionEnvelope, **ERRORS})
def create_artifact_version(request: HttpRequest, payload: ArtifactVersionCreateIn) -> Status[dict]:
    context = writer(request, "creating artifact versions")
    artifact = selectors.get_artifact(context.organization, payload.artifact_prn, "artifact_prn")
    version = services.artifact_version_create(
        artifact=artifact,
        version=payload.version,
        description=payload.description,
        custom_metadata=payload.custom_metadata,
    )
    return Status(201, {"artifact_version": serializers.artifact_version_data(version)})


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
    rows, next_page = selectors.list_page(
        queryset,
        organization,
        list_name="artifact_versions",
        limit=params.limit,
        order=params.order,
        page=params.page,
    )
    return {
        "artifact_versions": [serializers.artifact_version_data(v) for v in rows],
        "next_page": next_page,
    }


@artifact_versions.get("/{prn}", response={200: ArtifactVersionEnvelope, **ERRORS})
def get_artifact_version(request: HttpRequest, prn: str) -> dict:
    version = selectors.get_artifact_version(api_context(request).organization, prn)
    return {"artifact_version": serializers.artifact_version_data(version)}


@artifact_versions.patch("/{prn}", response={200: ArtifactVersionEnvelope, **ERRORS})
def update_artifact_version(
    request: HttpRequest, prn: str, payload: ArtifactVersionUpdateIn
) -> dict:
    context = writer(request, "changing artifact versions")
    version = selectors.get_artifact_version(context.organization, prn)
    version = services.artifact_version_update(artifact_version=version, **_changes(payload))
    return {"artifact_version": serializers.artifact_version_data(version)}


@artifact_versions.delete("/{prn}", response={204: None, **ERRORS})
def delete_artifact_version(request: HttpRequest, prn: str) -> Status[None]:
    context = writer(request, "deleting artifact versions")
    version = selectors.get_artifact_version(context.organization, prn)
    services.artifact_version_delete(artifact_version=version)
    return Status(204, None)


# --- Binaries ---------------------------------------------------------------------------

binaries = Router(tags=["binaries"])


@binaries.post("", response={201: BinaryEnvelope, **ERRORS})
def create_binary(request: HttpRequest, payload: BinaryCreateIn) -> Status[dict]:
    context = writer(request, "creating binaries")
    version = selectors.get_artifact_version(
        context.organization, payload.artifact_version_prn, "artifact_version_prn"
    )
    binary = services.binary_create(
        artifact_version=version,
        target=payload.target,
        actor=context.actor,
        hash=payload.hash,
        size=payload.size,
        description=payload.description,
        custom_metadata=payload.custom_metadata,
    )
    return Status(201, {"binary": serializers.binary_data(binary)})


@binaries.get("", response={200: BinaryList, **ERRORS})
def list_binaries(request: HttpRequest, params: Query[BinaryListParams]) -> dict:
    """Oldest first unless order=desc. Search keys: artifact_version_prn, description, hash,
    prn, size, state, target, created_at, inserted_at, updated_at."""
    organization = api_context(request).organization
    version = None
    if params.artifact_version_prn:
        version = selectors.get_artifact_version(
            organization, params.artifact_version_prn, "artifact_version_prn"
        )
    queryset = selectors.binary_list(
        organization,
        artifact_version=version,
        target=params.target,
        state=params.state,
        search=params.search,
    )
    rows, next_page = selectors.list_page(
        queryset,
        organization,
        list_name="binaries",
        limit=params.limit,
        order=params.order,
        page=params.page,
    )
    return {"binaries": [serializers.binary_data(b) for b in rows], "next_page": next_page}


@binaries.get("/{prn}", response={200: BinaryEnvelope, **ERRORS})
def get_binary(request: HttpRequest, prn: str) -> dict:
    binary = selectors.get_binary(api_context(request).organization, prn)
    return {"binary": serializers.binary_data(binary)}


@binaries.patch("/{prn}", response={200: BinaryEnvelope, **ERRORS})
def update_binary(request: HttpRequest, prn: str, payload: BinaryUpdateIn) -> dict:
    context = writer(request, "changing binaries")
    binary = selectors.get_binary(context.organization, prn)
    binary = services.binary_change(binary=binary, actor=context.actor, **_changes(payload))
    return {"binary": serializers.binary_data(binary)}


@binaries.delete("/{prn}", response={204: None, **ERRORS})
def destroy_binary(
    request: HttpRequest,
    prn: str,
    reason: str | None = None,
    payload: BinaryDestroyIn | None = None,
) -> Status[None]:
    """Destroy: the content is deleted, the record and its history stay. `reason` may come
    as a query parameter or in a JSON body."""
    context = writer(request, "destroying binaries")
    binary = selectors.get_binary(context.organization, prn)
    why = payload.reason if payload is not None and payload.reason is not None else reason
    services.binary_request_state(
        binary=binary,
        to="destroyed",
        actor=context.actor,
        reason=services.clean_reason(why),
    )
    return Status(204, None)


# --- Mounting: add new routers above this line, then here. --------------------------------

api.add_router("/artifacts", artifacts)
api.add_router("/artifact_versions", artifact_versions)
api.add_router("/binaries", binaries)
api.add_router("/", api_parts.router)
api.add_router("/signing_keys", api_signing.signing_keys)
api.add_router("/binary_signatures", api_signing.binary_signatures)
api.add_router("/", api_audit.distribution)
api.add_router("/", api_audit.audit)


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Unknown paths under /v1 answer in the API's shape, not with an HTML page."""
    return api.create_response(
        request,
        {"error": {"code": "not_found", "message": "No such API path.", "field": None}},
        status=404,
    )
