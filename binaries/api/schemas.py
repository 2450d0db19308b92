"""Request and response schemas of the JSON API, as the OpenAPI document shows them.

Request schemas check only the shape (strict JSON types, no unknown fields); the services
check the rules (lengths, hashes, sizes, states) so the console and the CLI get the same words.
Responses wrap the objects binaries.serializers describes, each once, in envelopes and lists.
"""

from collections.abc import Callable
from typing import Any, Literal, Protocol

from django.db.models import QuerySet
from ninja import Field, Schema
from pydantic import BaseModel, ConfigDict

from binaries import selectors
from binaries.models import State
from binaries.serializers import (
    STATES,
    ArtifactOut,
    ArtifactVersionOut,
    AuditEventOut,
    BinaryOut,
    BinaryPartOut,
    BinarySignatureOut,
    Metadata,
    SigningKeyOut,
    Timestamp,
)
from peridio_console.accounts.models import Organization
from peridio_console.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, keyset_page


class Body(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- Requests ---------------------------------------------------------------------------


class ArtifactCreateIn(Body):
    name: str = Field(..., examples=["edge-firmware"])
    description: str | None = None
    custom_metadata: Metadata | None = None


class ArtifactUpdateIn(Body):
    name: str | None = None
    description: str | None = None
    custom_metadata: Metadata | None = None


class ArtifactVersionCreateIn(Body):
    artifact_prn: str
    version: str = Field(..., examples=["1.4.2"])
    description: str | None = None
    custom_metadata: Metadata | None = None


class ArtifactVersionUpdateIn(Body):
    description: str | None = None
    custom_metadata: Metadata | None = None


class BinaryCreateIn(Body):
    artifact_version_prn: str
    target: str = Field(..., examples=["arm-linux-gnueabihf"])
    hash: str | None = Field(None, description="SHA-256 as sha256:<64 hex> or <64 hex>.")
    size: int | None = Field(None, description="Size in bytes.")
    description: str | None = None
    custom_metadata: Metadata | None = None


class BinaryUpdateIn(Body):
    description: str | None = None
    custom_metadata: Metadata | None = None
    hash: str | None = Field(None, description="Only while the binary is uploadable.")
    size: int | None = Field(None, description="Only while the binary is uploadable.")
    state: str | None = Field(
        None,
        description="Ask for a move: hashable (upload finished), uploadable (reset), destroyed.",
        json_schema_extra=STATES,
    )
    reason: str | None = Field(None, description="Why the binary moves; kept in its history.")


class BinaryDestroyIn(Body):
    reason: str | None = Field(None, description="Why the binary is destroyed.")


class ListParams(Schema):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    order: Literal["asc", "desc"] | None = Field(
        None, description="By creation time; asc (oldest first) unless a page says otherwise."
    )
    page: str | None = Field(None, description="The next_page of the previous response.")
    search: str | None = Field(
        None,
        description="Clauses key<op>value joined by ' and ' (ops : - ~ < <= > >=), "
        "e.g. target:universal and description-'nightly build'.",
    )


class ArtifactVersionListParams(ListParams):
    artifact_prn: str | None = None


class BinaryListParams(ListParams):
    artifact_version_prn: str | None = None
    target: str | None = None
    state: State | None = None


class PageRequest(Protocol):
    """What a list's query parameters carry for paging."""

    @property
    def limit(self) -> int: ...
    @property
    def order(self) -> str | None: ...
    @property
    def page(self) -> str | None: ...


def list_body(
    key: str,
    queryset: QuerySet[Any],
    params: PageRequest,
    build: Callable[[Any], BaseModel],
    *,
    organization: Organization | None = None,
) -> dict[str, Any]:
    """One keyset page of a list in the list's JSON shape: {key: [...], "next_page": ...}.
    With `organization`, the rows are handed it (their PRNs need no further query)."""
    limit, order, page = params.limit, params.order, params.page
    if organization is not None:
        rows, next_page = selectors.list_page(
            queryset, organization, list_name=key, limit=limit, order=order, page=page
        )
    else:
        rows, next_page = keyset_page(queryset, list_name=key, limit=limit, order=order, page=page)
    return {key: [build(row) for row in rows], "next_page": next_page}


def fields_set(payload: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body named, null included (null clears a description)."""
    return {name: getattr(payload, name) for name in payload.model_fields_set}


# --- Responses --------------------------------------------------------------------------


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    error: ErrorDetail


class ArtifactEnvelope(Schema):
    artifact: ArtifactOut


class ArtifactList(Schema):
    artifacts: list[ArtifactOut]
    next_page: str | None


class ArtifactVersionEnvelope(Schema):
    artifact_version: ArtifactVersionOut


class ArtifactVersionList(Schema):
    artifact_versions: list[ArtifactVersionOut]
    next_page: str | None


class BinaryEnvelope(Schema):
    binary: BinaryOut


class BinaryList(Schema):
    binaries: list[BinaryOut]
    next_page: str | None


class DeclaredPartOut(BinaryPartOut):
    presigned_upload_url: str = Field(..., description="PUT the part's bytes here.")
    expires_at: Timestamp


class DeclaredPartEnvelope(Schema):
    binary_part: DeclaredPartOut


class BinaryPartList(Schema):
    binary_parts: list[BinaryPartOut]


class SigningKeyEnvelope(Schema):
    signing_key: SigningKeyOut


class SigningKeyList(Schema):
    signing_keys: list[SigningKeyOut]
    next_page: str | None


class BinarySignatureEnvelope(Schema):
    binary_signature: BinarySignatureOut


class BinarySignatureList(Schema):
    binary_signatures: list[BinarySignatureOut]
    next_page: str | None


class DownloadUrlOut(Schema):
    download_url: str
    expires_at: Timestamp


class DailyCount(Schema):
    date: str = Field(..., json_schema_extra={"format": "date"})
    count: int
    bytes: int | None = Field(
        ..., description="Bytes served that day (completed_downloads only; null otherwise)."
    )


class DownloadCounts(Schema):
    counts: str = Field(
        ...,
        description="completed_downloads (the server serves the bytes: filesystem backend) or "
        "urls_issued (presigned or CloudFront URLs serve them; only issuing is known).",
        examples=["completed_downloads"],
    )
    label: str = Field(..., examples=["Completed downloads"])
    download_counts: list[DailyCount]


class AuditEventList(Schema):
    audit_events: list[AuditEventOut]
    next_page: str | None


# The error answers every operation may give, in the one error shape. 503: the database or
# the object store is unreachable (nothing was changed; Retry-After says when to try again).
ERRORS: dict[Any, Any] = {frozenset({400, 401, 403, 404, 409, 413, 503}): ErrorOut}
# Download URLs of destroyed binaries answer 410.
GONE_ERRORS: dict[Any, Any] = {frozenset({400, 401, 403, 404, 409, 410, 413, 503}): ErrorOut}
