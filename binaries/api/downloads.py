"""Download URLs and download counts."""

from django.http import HttpRequest
from ninja import Router

from binaries import downloads, selectors
from binaries.api.auth import api_context
from binaries.api.schemas import ERRORS, GONE_ERRORS, DownloadCounts, DownloadUrlOut
from binaries.serializers import iso
from peridio_console.accounts.throttle import client_address

router = Router(tags=["downloads"])


def _client_ip(request: HttpRequest) -> str | None:
    return client_address(request) or None


@router.get("/binaries/{prn}/download_url", response={200: DownloadUrlOut, **GONE_ERRORS})
def binary_download_url(request: HttpRequest, prn: str, expires_in: int | None = None) -> dict:
    """A time-limited URL for a signed binary (S3 presigned, CloudFront-signed, or this
    server's own signed URL, which honours HTTP Range so downloads resume)."""
    context = api_context(request)
    binary = selectors.get_binary(context.organization, prn)
    issued = downloads.issue_url(
        binary=binary,
        actor=context.actor.with_ip(_client_ip(request)),
        base_url=request.build_absolute_uri("/"),
        expires_in=expires_in,
    )
    return {"download_url": issued.url, "expires_at": iso(issued.expires_at)}


@router.get("/binaries/{prn}/download_counts", response={200: DownloadCounts, **ERRORS})
def binary_download_counts(request: HttpRequest, prn: str, days: int = 30) -> dict:
    """One binary's downloads per day over the last 7, 30 or 90 days: `counts` says what is
    counted (completed downloads and bytes served on the filesystem backend, download URLs
    issued where presigned or CloudFront URLs serve the bytes)."""
    context = api_context(request)
    binary = selectors.get_binary(context.organization, prn)
    return _counts(downloads.daily_counts(context.organization, binary=binary, days=days))


@router.get("/download_counts", response={200: DownloadCounts, **ERRORS})
def organization_download_counts(request: HttpRequest, days: int = 30) -> dict:
    """The same across the organization."""
    context = api_context(request)
    return _counts(downloads.daily_counts(context.organization, days=days))


def _counts(counted: tuple[str, list[dict]]) -> dict:
    what, days = counted
    return {"counts": what, "label": downloads.LABELS[what], "download_counts": days}
