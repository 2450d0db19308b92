"""Upload (and later download) endpoints whose signed URL is the credential.

They are CSRF-exempt and take no session or API key: a client never sends its key here.
The request body is read as a stream, never as request.body.
"""

import time

from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from binaries import storage, uploads
from binaries.errors import DomainError
from binaries.models import PartState
from binaries.serializers import binary_part_data


def error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "field": None}}, status=status)


@csrf_exempt
@require_http_methods(["PUT"])
def part_upload(request: HttpRequest, token: str) -> HttpResponse:
    try:
        payload = storage.read_part_token(token)
    except signing.BadSignature:
        return error(
            403,
            "url_tampered",
            "This upload URL was altered or is not ours; declare the part again for a new URL.",
        )
    if payload["e"] < time.time():
        return error(
            403, "url_expired", "This upload URL has expired; declare the part again for a new URL."
        )
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    if not raw_length.isdigit():
        return error(411, "length_required", "Send the part with a Content-Length header.")
    try:
        part = uploads.part_receive(token_payload=payload, stream=request, length=int(raw_length))
    except storage.PartBusy as exc:
        return error(409, "part_busy", str(exc))
    except DomainError as exc:
        return error(exc.status, exc.code, exc.message)
    status = 200 if part.state == PartState.VALID else 422
    response = JsonResponse({"binary_part": binary_part_data(part)}, status=status)
    if status != 200:
        response["Connection"] = "close"  # we may not have read the whole body
    return response
