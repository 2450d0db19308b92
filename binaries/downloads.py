"""Distribution: time-limited download URLs for signed binaries, and their audit trail."""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from binaries import storage
from binaries.models import Binary, DownloadServed, State
from peridio_console.accounts import audit
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditAction, AuditEvent, Organization
from peridio_console.core.errors import Conflict, Gone, InvalidInput

ISSUED = AuditAction.DOWNLOAD_URL_ISSUED


@dataclass
class DownloadUrl:
    url: str
    expires_at: datetime


def require_downloadable(binary: Binary) -> None:
    """Refuse (410 or 409, saying why) a binary that may not be downloaded now."""
    if binary.state == State.DESTROYED:
        raise Gone(
            "The binary was destroyed; its content is gone and it cannot be downloaded.",
            code="destroyed",
        )
    if binary.state != State.SIGNED:
        raise Conflict(
            f"The binary is {binary.state}; only signed binaries can be downloaded.",
            code="not_signed",
        )
    if binary.integrity_failed_at is not None:
        raise Conflict(f"Downloads are refused: {binary.last_error}", code="integrity_failed")
    if not binary.signatures.filter(revoked_at__isnull=True).exists():
        if not binary.signatures.exists():
            raise Conflict(
                "Downloads are refused: the binary has no signature (its signatures were "
                "removed); attach a valid signature (POST /v1/binary_signatures).",
                code="signature_required",
            )
        raise Conflict(
            "Downloads are refused: every signature of this binary was revoked with its key; "
            "sign it again with a live key.",
            code="signature_revoked",
        )


def clean_expires_in(value: Any) -> int:
    if value is None:
        return settings.DOWNLOAD_URL_TTL_SECONDS
    maximum = settings.DOWNLOAD_URL_MAX_TTL_SECONDS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(
            f"expires_in must be a whole number of seconds from 1 to {maximum}; got {value!r}.",
            field="expires_in",
        )
    return value


def issue_url(
    *, binary: Binary, actor: Actor, base_url: str, expires_in: Any = None
) -> DownloadUrl:
    seconds = clean_expires_in(expires_in)
    binary.refresh_from_db()
    require_downloadable(binary)
    expires_at = timezone.now() + timedelta(seconds=seconds)
    url = storage.get().download_url(binary, expires_at, base_url)
    audit.record(
        organization=binary.organization,
        actor=actor,
        action=ISSUED,
        object_prn=binary.prn,
        details={"expires_at": expires_at.isoformat(), "target": binary.target},
    )
    return DownloadUrl(url=url, expires_at=expires_at)


def record_served(binary: Binary, sent: int, *, completed: bool) -> None:
    """What one response of the filesystem download endpoint sent (binaries.api.transfers)."""
    DownloadServed.objects.create(
        organization_id=binary.organization_id,
        binary=binary,
        bytes_served=sent,
        completed=completed,
    )


# What the counts count: the server's own downloads where it serves the bytes, otherwise the
# URLs it issued (a presigned or CloudFront URL is fetched without asking us).
COMPLETED = "completed_downloads"
URLS_ISSUED = "urls_issued"
LABELS = {COMPLETED: "Completed downloads", URLS_ISSUED: "Download URLs issued"}


def counted() -> str:
    return COMPLETED if storage.get().name == "filesystem" else URLS_ISSUED


def daily_counts(
    organization: Organization, *, binary: Binary | None = None, days: int = 30
) -> tuple[str, list[dict[str, Any]]]:
    """(what is counted, per day over the last `days` days, zero-filled, oldest first): the
    completed downloads and bytes served where this server serves the content (filesystem
    backend), the download URLs issued otherwise (bytes None: not known)."""
    if days not in (7, 30, 90):
        raise InvalidInput(f"days must be 7, 30 or 90; got {days!r}.", field="days")
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    what = counted()
    rows: Any
    if what == COMPLETED:
        rows = DownloadServed.objects.filter(organization=organization, at__gte=since)
        if binary is not None:
            rows = rows.filter(binary=binary)
        per_day = rows.annotate(day=TruncDate("at")).values("day")
        per_day = per_day.annotate(
            n=Count("id", filter=Q(completed=True)), bytes=Sum("bytes_served")
        )
    else:
        rows = AuditEvent.objects.filter(organization=organization, action=ISSUED, at__gte=since)
        if binary is not None:
            rows = rows.filter(object_prn=binary.prn)
        per_day = rows.annotate(day=TruncDate("at")).values("day").annotate(n=Count("id"))
    found = {row["day"]: row for row in per_day}
    empty = {"n": 0, "bytes": 0 if what == COMPLETED else None}
    return what, [
        {
            "date": (first + timedelta(days=i)).isoformat(),
            "count": found.get(first + timedelta(days=i), empty)["n"],
            "bytes": found.get(first + timedelta(days=i), empty).get("bytes"),
        }
        for i in range(days)
    ]
