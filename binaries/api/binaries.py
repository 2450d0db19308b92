"""Binaries: create, list, read, change (fields and state), destroy."""

from django.http import HttpRequest
from ninja import Query, Router, Status

from binaries import moves, selectors, services
from binaries.api.auth import api_context, writer
from binaries.api.schemas import (
    ERRORS,
    BinaryCreateIn,
    BinaryDestroyIn,
    BinaryEnvelope,
    BinaryList,
    BinaryListParams,
    BinaryUpdateIn,
    fields_set,
    list_body,
)
from binaries.serializers import BinaryOut
from peridio_console.core.wire import wants_platform

router = Router(tags=["binaries"])


@router.post("", response={201: BinaryEnvelope, **ERRORS})
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
        id=payload.id,
    )
    return Status(201, {"binary": BinaryOut.from_model(binary)})


@router.get("", response={200: BinaryList, **ERRORS})
def list_binaries(request: HttpRequest, params: Query[BinaryListParams]) -> dict:
    """Oldest first unless order=desc. Search keys: artifact_version_prn, description, hash,
    prn, size, state, target, created_at, inserted_at, updated_at. With `x-api-version: 2`
    destroyed binaries are listed only when asked for by state: the hosted platform's delete
    removes a binary, and its CLI takes a listed binary for the target's current one."""
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
        live_only=wants_platform(request),
    )
    return list_body("binaries", queryset, params, BinaryOut.from_model, organization=organization)


@router.get("/{prn}", response={200: BinaryEnvelope, **ERRORS})
def get_binary(request: HttpRequest, prn: str) -> dict:
    binary = selectors.get_binary(api_context(request).organization, prn)
    return {"binary": BinaryOut.from_model(binary)}


@router.patch("/{prn}", response={200: BinaryEnvelope, **ERRORS})
def update_binary(request: HttpRequest, prn: str, payload: BinaryUpdateIn) -> dict:
    context = writer(request, "changing binaries")
    binary = selectors.get_binary(context.organization, prn)
    binary = services.binary_change(binary=binary, actor=context.actor, **fields_set(payload, prn))
    return {"binary": BinaryOut.from_model(binary)}


@router.delete("/{prn}", response={204: None, **ERRORS})
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
    moves.destroy(
        binary=binary,
        actor=context.actor,
        reason=services.clean_reason(why),
    )
    return Status(204, None)
