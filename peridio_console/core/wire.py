"""The two wire formats of the JSON API's answers.

Requests without `x-api-version` get this project's own shapes (those of the binaries guide:
`{"error": {"code", "message", "field"}}`, hashes as `sha256:<hex>`). Requests with
`x-api-version: 2`, which the hosted platform's SDK and CLI send on every call, get that
platform's: errors as `{"errors": {"detail": "..."}}`, or `{"errors": {"<field>": ["..."]}}`
when the request was invalid (400) because of one field. The objects' own differences live
in binaries.serializers.
"""

from typing import Any

from django.http import HttpRequest

PLATFORM_VERSION = "2"


def wants_platform(request: HttpRequest) -> bool:
    """Whether the request asked for the hosted platform's wire format (x-api-version: 2)."""
    return request.headers.get("x-api-version", "").strip() == PLATFORM_VERSION


def error_body(
    code: str, message: str, field: str | None = None, *, platform: bool = False
) -> dict[str, Any]:
    """One error in the shape the client asked for (for the platform: not a 400's)."""
    if platform:
        return {"errors": {"detail": message}}
    return {"error": {"code": code, "message": message, "field": field}}


def platform_error(body: dict[str, Any], status: int) -> dict[str, Any]:
    """An error body of this project's shape in the platform's: a 400 caused by one field
    names it, as the platform's validation errors do; anything else is a detail."""
    error = body["error"]
    if status == 400 and error.get("field"):
        return {"errors": {error["field"]: [error["message"]]}}
    return {"errors": {"detail": error["message"]}}
