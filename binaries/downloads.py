"""Distribution: time-limited download URLs for signed binaries, and their audit trail."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from binaries import storage
from binaries.models import Binary, State
from peridio_console.accounts import audit
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditEvent, Organization
from peridio_console.core.errors import Conflict, Gone, InvalidInput

ISSUED = "download_url.issued"


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


def daily_counts(
    organization: Organization, *, binary: Binary | None = None, days: int = 30
) -> list[dict[str, Any]]:
    """Download URLs issued per day over the last `days` days, zero-filled, oldest first."""
    if days not in (7, 30, 90):
        raise InvalidInput(f"days must be 7, 30 or 90; got {days!r}.", field="days")
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    events = AuditEvent.objects.filter(
        organization=organization, action=ISSUED, at__date__gte=first
    )
    if binary is not None:
        events = events.filter(object_prn=binary.prn)
    counted: dict[date, int] = {
        row["day"]: row["n"]
        for row in events.annotate(day=TruncDate("at")).values("day").annotate(n=Count("id"))
    }
    return [
        {
            "date": (first + timedelta(days=i)).isoformat(),
            "count": counted.get(first + timedelta(days=i), 0),
        }
        for i in range(days)
    ]
