"""Response headers every page gets, the API's error shape outside its views, and a clear
answer when the database is unreachable."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from peridio_console.core.errors import database_trouble
from peridio_console.core.wire import error_body, wants_platform

log = logging.getLogger(__name__)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, with STATIC_ROOT made before it looks there (collectstatic fills it; a test
    run or a fresh checkout may not have it yet)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
        super().__init__(*args, **kwargs)


def content_security_policy() -> str:
    connect = ["'self'", *settings.CSP_CONNECT_SRC]
    binaries_storage: Any = settings.STORAGES.get("binaries", {})
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


class DatabaseErrorMiddleware:
    """A request that fails on the database gets one clear answer (the same words as the API's
    handler): JSON under /v1/ and /transfer/, plain text elsewhere, with Retry-After."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        trouble = database_trouble(exception)
        log.error("Database error (%s) while serving %s: %s", trouble.code, request.path, exception)
        if request.path.startswith("/v1/") or request.path.startswith("/transfer/"):
            response: HttpResponse = JsonResponse(
                error_body(trouble.code, trouble.message, platform=wants_platform(request)),
                status=trouble.status,
            )
        else:
            response = HttpResponse(
                trouble.message, status=trouble.status, content_type="text/plain; charset=utf-8"
            )
        if trouble.retry_after:
            response["Retry-After"] = trouble.retry_after
        return response


class ApiErrorShapeMiddleware:
    """Answers the API and the transfer URLs give outside their views (a method a path does not
    take, an unknown transfer path) come in the API's one error shape, not as HTML or text."""

    PREFIXES = ("/v1/", "/transfer/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code not in (404, 405)
            or not request.path.startswith(self.PREFIXES)
            or request.path.startswith("/v1/docs")
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        if response.status_code == 405:
            allowed = ", ".join(sorted(m.strip() for m in response.get("Allow", "").split(",")))
            code = "method"
            message = f"{request.method} is not allowed on this path; it takes {allowed}."
        else:
            code, message = "not_found", "Not found."
        shaped = JsonResponse(
            error_body(code, message, platform=wants_platform(request)),
            status=response.status_code,
        )
        if response.has_header("Allow"):
            shaped["Allow"] = response["Allow"]
        return shaped


class ApiPrefixMiddleware:
    """An API path without its /v1 (a client given https://host as its base URL instead of
    https://host/v1) gets a JSON answer saying so, never the console's HTML, a redirect to it,
    or Django's 500 for a POST it cannot redirect. Before CommonMiddleware, which would add
    the slash. The console's own pages under /artifacts/ and /binaries/ stay theirs."""

    # The API's first path segments; the console has pages under the first two.
    SHARED = frozenset({"artifacts", "binaries"})
    API_ONLY = frozenset(
        {
            "artifact_versions",
            "binary_signatures",
            "signing_keys",
            "download_counts",
            "audit_events",
        }
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self._is_api_path(request):
            return self.get_response(request)
        path = request.path
        message = (
            f"API paths begin with /v1: send this request to /v1{path}. Give clients the base "
            "URL with /v1 at its end (PERIDIO_BASE_URL=https://<host>/v1)."
        )
        return JsonResponse(
            error_body("not_found", message, platform=wants_platform(request)), status=404
        )

    def _is_api_path(self, request: HttpRequest) -> bool:
        segments = request.path.split("/")  # "/binaries/prn:.../parts" -> ["", "binaries", ...]
        first = segments[1] if len(segments) > 1 else ""
        if first in self.API_ONLY:
            return True
        if first not in self.SHARED:
            return False
        api_client = "x-api-version" in request.headers or "authorization" in request.headers
        if api_client or (len(segments) > 2 and segments[2].startswith("prn:")):
            return True
        # "/binaries" without its slash: a browser is sent on to the page, any other client told.
        return len(segments) == 2 and "text/html" not in request.headers.get("accept", "")
