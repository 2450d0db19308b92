"""Response headers every page gets, and a clear answer when the database is unreachable."""

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)


def content_security_policy() -> str:
    connect = ["'self'", *settings.CSP_CONNECT_SRC]
    binaries_storage: Any = settings.STORAGES["binaries"]
    endpoint = binaries_storage.get("OPTIONS", {}).get("endpoint_url")
    if settings.STORAGE_BACKEND == "s3":
        # Browsers PUT parts straight to the bucket.
        if endpoint:
            parts = urlsplit(endpoint)
            connect.append(f"{parts.scheme}://{parts.netloc}")
        else:
            connect.append("https://*.amazonaws.com")
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",  # WebAssembly (the hasher), not eval
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'self'",
            "object-src 'none'",
        ]
    )


class SecurityHeadersMiddleware:
    """A Content-Security-Policy with no inline script (Django 5.2 has none built in)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.policy = content_security_policy()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/v1/docs"):  # the interactive docs load their own assets
            response.headers.setdefault("Content-Security-Policy", self.policy)
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=()"
        )
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.error("Database unavailable while serving %s: %s", request.path, exception)
        message = (
            "The database is unreachable right now; nothing was changed. Try again in a moment."
        )
        if request.path.startswith("/v1/") or request.path.startswith("/transfer/"):
            response: HttpResponse = JsonResponse(
                {"error": {"code": "unavailable", "message": message, "field": None}}, status=503
            )
        else:
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = "5"
        return response
