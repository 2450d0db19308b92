"""Reads. Every query is scoped to one organization: another organization's rows are 'not found'."""

from datetime import timedelta
from typing import TypeVar

from django.db.models import Count, Exists, Model, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from binaries.models import (
    Artifact,
    ArtifactVersion,
    Binary,
    BinaryPart,
    BinarySignature,
    PartState,
    SigningKey,
    State,
)
from binaries.search import (
    ARTIFACT_FIELDS,
    ARTIFACT_VERSION_FIELDS,
    BINARY_FIELDS,
    BINARY_SIGNATURE_FIELDS,
    SIGNING_KEY_FIELDS,
    search_filter,
    search_keys,
)
from peridio_console.accounts.models import Organization
from peridio_console.core.errors import InvalidInput, NotFound
from peridio_console.core.pagination import DEFAULT_LIMIT, keyset_page
from peridio_console.core.prn import MalformedPRN, parse_prn

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
    signatures = BinarySignature.objects.select_related("signing_key").order_by("created_at", "id")
    return (
        Binary.objects.filter(organization=organization)
        .select_related("organization", "artifact_version", "artifact_version__artifact")
        .prefetch_related(Prefetch("signatures", queryset=signatures))
    )


def get_artifact(organization: Organization, prn: str, field: str = "prn") -> Artifact:
    return _get(artifacts(organization), organization, prn, "artifact", field)


def get_artifact_version(
    organization: Organization, prn: str, field: str = "prn"
) -> ArtifactVersion:
    return _get(artifact_versions(organization), organization, prn, "artifact_version", field)


def get_binary(organization: Organization, prn: str, field: str = "prn") -> Binary:
    return _get(binaries(organization), organization, prn, "binary", field)


# --- Lists for the API: filters and the search language, read a page at a time ---
#
# List queries do not join the organization (every row has the one we filter on): with that
# join SQLite, lacking statistics, walks the (organization, created_at, id) index even when
# (organization, target, created_at, id) fits. list_page hands each row its organization.


def artifact_list(organization: Organization, *, search: str | None = None) -> QuerySet[Artifact]:
    queryset = Artifact.objects.filter(organization=organization)
    if search:
        queryset = queryset.filter(search_filter(search, ARTIFACT_FIELDS, organization))
    return queryset


def artifact_version_list(
    organization: Organization, *, artifact: Artifact | None = None, search: str | None = None
) -> QuerySet[ArtifactVersion]:
    queryset = ArtifactVersion.objects.filter(organization=organization).select_related("artifact")
    if artifact is not None:
        queryset = queryset.filter(artifact=artifact)
    if search:
        queryset = queryset.filter(search_filter(search, ARTIFACT_VERSION_FIELDS, organization))
    return queryset


def binary_list(
    organization: Organization,
    *,
    artifact_version: ArtifactVersion | None = None,
    target: str | None = None,
    state: str | None = None,
    search: str | None = None,
    live_only: bool = False,
) -> QuerySet[Binary]:
    """With live_only, destroyed binaries are left out unless the search names a state."""
    # binaries() for its signature prefetch; only the version joined (see above).
    queryset = binaries(organization).select_related(None).select_related("artifact_version")
    if artifact_version is not None:
        queryset = queryset.filter(artifact_version=artifact_version)
    if target:
        queryset = queryset.filter(target=target)
    if state:
        queryset = queryset.filter(state=state)
    if search:
        queryset = queryset.filter(search_filter(search, BINARY_FIELDS, organization))
    if live_only and not state and not (search and "state" in search_keys(search)):
        queryset = queryset.exclude(state=State.DESTROYED)
    return queryset


def binary_signature_list(
    organization: Organization, *, binary: Binary | None = None, search: str | None = None
) -> QuerySet[BinarySignature]:
    queryset = BinarySignature.objects.select_related(
        "binary__organization", "signing_key__organization"
    ).filter(binary__organization=organization)
    if binary is not None:
        queryset = queryset.filter(binary=binary)
    if search:
        queryset = queryset.filter(search_filter(search, BINARY_SIGNATURE_FIELDS, organization))
    return queryset


def signing_key_list(
    organization: Organization, *, search: str | None = None
) -> QuerySet[SigningKey]:
    queryset = SigningKey.objects.select_related("organization").filter(organization=organization)
    if search:
        queryset = queryset.filter(search_filter(search, SIGNING_KEY_FIELDS, organization))
    return queryset


def list_page(
    queryset: QuerySet[M],
    organization: Organization,
    *,
    list_name: str,
    limit: int = DEFAULT_LIMIT,
    order: str | None = None,
    page: str | None = None,
) -> tuple[list[M], str | None]:
    """One keyset page of a list above, each row given its organization, and the next cursor."""
    rows, next_page = keyset_page(
        queryset, list_name=list_name, limit=limit, order=order, page=page
    )
    for row in rows:
        row.organization = organization  # type: ignore[attr-defined]
    return rows, next_page


# --- The dashboard ---------------------------------------------------------------------------

ATTENTION_LIMIT = 10
# Content the store holds once the upload is complete (uploadable binaries hold their parts).
HELD_STATES = (State.HASHABLE, State.HASHING, State.SIGNABLE, State.SIGNED)


def state_counts(organization: Organization) -> dict[str, int]:
    """Binaries per state, every state present (zero included), in the lifecycle's order."""
    counted = dict(
        Binary.objects.filter(organization=organization)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    return {state: counted.get(state, 0) for state in State.values}


def needing_attention(organization: Organization) -> dict[str, list[Binary]]:
    """Binaries someone should look at, by reason: uploads left for more than a day, failed
    verifications, and signed binaries with no live signature (downloads are refused)."""
    found = binaries(organization).order_by("-updated_at", "-id")
    day_ago = timezone.now() - timedelta(days=1)
    live = BinarySignature.objects.filter(binary=OuterRef("pk"), revoked_at__isnull=True)
    return {
        "stalled": list(
            found.filter(state=State.UPLOADABLE, created_at__lt=day_ago)[:ATTENTION_LIMIT]
        ),
        "failed": list(
            found.filter(
                Q(integrity_failed_at__isnull=False)
                | (Q(state=State.UPLOADABLE) & ~Q(last_error=""))
            )[:ATTENTION_LIMIT]
        ),
        "unsigned": list(found.filter(state=State.SIGNED).exclude(Exists(live))[:ATTENTION_LIMIT]),
    }


def storage_used(organization: Organization) -> int:
    """Bytes of content held: whole uploads plus the parts of uploads under way."""
    whole = Binary.objects.filter(organization=organization, state__in=HELD_STATES).aggregate(
        n=Sum("size")
    )["n"]
    parts = BinaryPart.objects.filter(
        binary__organization=organization,
        binary__state=State.UPLOADABLE,
        state=PartState.VALID,
    ).aggregate(n=Sum("size"))["n"]
    return (whole or 0) + (parts or 0)
