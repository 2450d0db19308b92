"""Upload (and later download) endpoints whose signed URL is the credential.

They are CSRF-exempt and take no session or API key: a client never sends its key here.
The request body is read as a stream, never as request.body.
"""

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from binaries import downloads, storage, uploads
from binaries.models import Binary, PartState
from binaries.serializers import BinaryPartOut
from binaries.storage import tokens
from peridio_console.core.errors import DomainError


def error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "field": None}}, status=status)


def storage_failure(exc: storage.StorageError) -> JsonResponse:
    """507 when the disk is full (freeing space fixes it), else 503: the store may come back."""
    if isinstance(exc, storage.StorageFull):
        return error(507, "insufficient_storage", str(exc))
    refused = error(503, "storage_unavailable", str(exc))
    refused["Retry-After"] = "5"
    return refused


@csrf_exempt
@require_http_methods(["PUT"])
def part_upload(request: HttpRequest, token: str) -> HttpResponse:
    try:
        payload = tokens.read_part_token(token)
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
    if not (raw_length.isascii() and raw_length.isdigit()):  # "²".isdigit(), but int() fails
        return error(411, "length_required", "Send the part with a Content-Length header.")
    try:
        part = uploads.part_receive(token_payload=payload, stream=request, length=int(raw_length))
    except storage.PartBusy as exc:
        return error(409, "part_busy", str(exc))
    except storage.StorageError as exc:
        return storage_failure(exc)
    except DomainError as exc:
        return error(exc.status, exc.code, exc.message)
    # No "Connection: close" on a refusal: WSGI forbids hop-by-hop headers (wsgiref servers
    # answer 500, gunicorn drops it); servers close or drain a body the view left unread.
    status = 200 if part.state == PartState.VALID else 422
    return JsonResponse({"binary_part": BinaryPartOut.from_model(part).model_dump()}, status=status)


RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# Sizes are stored as 64-bit integers, so a number of more digits than 2**63 - 1 has (19) is
# beyond any content: it is read as that, never handed to int() (which refuses 4,300 digits).
BEYOND = 10**19


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else BEYOND


def _byte_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive) for a single satisfiable range; None to send it all;
    "unsatisfiable" for a 416. As RFC 9110 reads them: a start past the end cannot be
    satisfied, an end past the end means the end, a suffix longer than the content is all of it.
    """
    match = RANGE_RE.match(header.strip())
    if not match:
        return None  # multiple or malformed ranges: ignore the header (RFC 9110 allows it)
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = _position(last)
        if length == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = _position(first)
    end = size - 1 if last == "" else min(_position(last), size - 1)
    if start >= size or (last != "" and _position(last) < start):
        return "unsatisfiable"
    return start, end


class RangeStream:
    """The bytes [start, start + length) of an open handle, read a buffer at a time.

    The response closes it when it is closed, so the file is closed even when the client goes
    away before the body is read (a generator that never started would keep it open).
    """

    def __init__(
        self,
        handle: Any,
        start: int,
        length: int,
        on_done: Callable[[int, bool], None] | None = None,
    ):
        self.handle, self.start, self.length = handle, start, length
        self.on_done, self.sent = on_done, 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            self.handle.seek(self.start)
            while self.sent < self.length:
                chunk = self.handle.read(min(storage.READ_BUFFER, self.length - self.sent))
                if not chunk:
                    return
                yield chunk
                self.sent += len(chunk)  # once the server took it
        finally:
            self.close()

    def close(self) -> None:
        """Close the file and report what was sent (once), whether the body was read to its
        end or the client went away."""
        self.handle.close()
        done, self.on_done = self.on_done, None
        if done is not None and self.sent:
            done(self.sent, self.sent == self.length)


@require_http_methods(["GET", "HEAD"])
def binary_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """A signed binary's content, streamed, resumable with HTTP Range (filesystem backend)."""
    try:
        payload = tokens.read_download_token(token)
    except signing.BadSignature:
        return error(
            403, "url_tampered", "This download URL was altered or is not ours; ask for a new one."
        )
    if payload["e"] < time.time():
        return error(403, "url_expired", "This download URL has expired; ask for a new one.")
    binary = (
        Binary.objects.select_related("organization", "artifact_version__artifact")
        .filter(uuid=payload["b"])
        .first()
    )
    if binary is None:
        return error(404, "not_found", "No such binary.")
    try:
        downloads.require_downloadable(binary)
    except DomainError as problem:
        return error(problem.status, problem.code, problem.message)
    if binary.verified_hash != payload["h"]:
        return error(410, "gone", "The content this URL was issued for is gone.")
    backend = storage.get()
    try:
        handle = backend.open(binary)
    except storage.ContentMissing:
        return error(410, "gone", "The content of this binary is no longer stored.")
    except storage.StorageError as exc:
        return storage_failure(exc)
    size = binary.size or 0
    etag = f'"{binary.verified_hash}"'
    wanted: tuple[int, int] | str | None = None
    range_header = request.headers.get("Range", "")
    if_range = request.headers.get("If-Range")
    if range_header and (if_range is None or if_range.strip() == etag):
        wanted = _byte_range(range_header, size)
    if wanted == "unsatisfiable":
        handle.close()
        refused = error(416, "range_not_satisfiable", f"The content is {size} bytes long.")
        refused["Content-Range"] = f"bytes */{size}"
        return refused
    if isinstance(wanted, tuple):
        start, end = wanted
        status = 206
    else:
        start, end, status = 0, size - 1, 200
    length = max(0, end - start + 1)
    last_byte = end == size - 1

    def served(sent: int, whole_range: bool) -> None:
        downloads.record_served(binary, sent, completed=whole_range and last_byte)

    body: Any = [] if request.method == "HEAD" else RangeStream(handle, start, length, served)
    if request.method == "HEAD":
        handle.close()
    response = StreamingHttpResponse(body, status=status, content_type="application/octet-stream")
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Content-Disposition"] = storage.content_disposition(binary)
    response["Cache-Control"] = "private, no-transform"
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response
