"""One error shape for the whole API: {"error": {"code", "message", "field"}}.

Also the request-body parser: JSON whatever the Content-Type says (curl's `-d` sends
application/x-www-form-urlencoded), refusing up front what a database would choke on later
(NaN, infinities, NUL characters, unpaired surrogates).
"""

import json
import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, UnreadablePostError
from django.utils.datastructures import MultiValueDict
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser

from binaries.storage import PartBusy, StorageError, StorageFull
from peridio_console.core.errors import DomainError, InvalidInput, database_trouble
from peridio_console.core.wire import error_body

if TYPE_CHECKING:
    from ninja import NinjaAPI

logger = logging.getLogger(__name__)

CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method"}


# --- Parsing ----------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"The request body must be plain JSON; {name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise InvalidInput(f"The request body holds a number too large to store: {text[:40]}.")
    return value


def _check_text(value: str, where: str) -> None:
    field = None if where.startswith(("the ", "a key")) else where
    if "\x00" in value:
        raise InvalidInput(
            f"{where} contains a NUL character, which cannot be stored.", field=field
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{where} contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not text.",
            field=field,
        ) from None


def _check_strings(data: Any) -> None:
    """Walk the parsed body without recursion (a deep body must not exhaust the stack)."""
    stack: list[tuple[Any, str]] = [(data, "the request body")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"a key in {where}")
                stack.append((item, key if where == "the request body" else f"{where}.{key}"))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{n}]") for n, item in enumerate(value))


def _describe(value: Any) -> str:
    names = {list: "a JSON array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"The request body must be UTF-8 JSON; byte {exc.start + 1} is not valid UTF-8."
        ) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"The request body must be a JSON object; at line {exc.lineno} column {exc.colno}: "
            f"{exc.msg}."
        ) from None
    except RecursionError:
        raise InvalidInput("The request body is nested too deeply.") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InvalidInput(f"The request body must be a JSON object; {exc}.") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f'The request body must be a JSON object such as {{"name": ...}}; '
            f"got {_describe(data)}."
        )
    _check_strings(data)
    return data


class JSONBodyParser(Parser):
    """Bodies are JSON whatever the Content-Type; query strings may not carry NUL characters."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return parse_json_object(request.body)

    def parse_querydict(
        self, data: MultiValueDict, list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        for key, values in data.lists():
            if len(values) > 1 and key not in list_fields:
                raise InvalidInput(
                    f"The query parameter {key!r} is given {len(values)} times; give it once.",
                    field=key,
                )
            for value in values:
                if "\x00" in key or "\x00" in value:
                    raise InvalidInput(
                        f"The query parameter {key!r} contains a NUL character.", field=key
                    )
        return super().parse_querydict(data, list_fields, request)


# --- Validation errors from ninja / pydantic -------------------------------------------

EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a JSON array",
}


def _shown_input(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:77] + "...")
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        text = str(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return "a JSON object" if isinstance(value, dict) else _describe(value)


def _field_of(loc: tuple[Any, ...]) -> str | None:
    # ("body", "<param>", "size") for a body field, ("query", "limit"), ("path", "prn").
    parts = loc[2:] if loc and loc[0] == "body" else loc[1:]
    return ".".join(str(part) for part in parts) or None


def _requirement(error: dict[str, Any], field: str) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "missing":
        return f"{field} is required."
    if kind == "extra_forbidden":
        accepted = ", ".join(error.get("accepted", [])) or "see /v1/docs"
        return f"{field} is not a field of this request; it takes: {accepted}."
    if kind in EXPECTED:
        return f"{field} must be {EXPECTED[kind]}"
    if kind in ("literal_error", "enum"):
        return f"{field} must be {ctx.get('expected')}"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        return f"{field} must be {'at least' if 'ge' in ctx else 'at most'} {bound}"
    if kind == "string_too_long":
        return f"{field} must be at most {ctx.get('max_length')} characters"
    return f"{field}: {error.get('msg', 'is not valid')}"


def validation_message(error: dict[str, Any]) -> tuple[str | None, str]:
    field = _field_of(tuple(error.get("loc", ())))
    if field is None:
        if error.get("type") == "missing":
            return None, "The request needs a JSON object body."
        return (
            None,
            f"The request body must be a JSON object; got {_shown_input(error.get('input'))}.",
        )
    requirement = _requirement(error, field)
    if requirement.endswith("."):
        return field, requirement
    return field, f"{requirement}; got {_shown_input(error.get('input'))}."


# --- Handlers ---------------------------------------------------------------------------


def install_error_handlers(api: "NinjaAPI") -> None:
    def respond(request: HttpRequest, status: int, body: dict[str, Any]) -> HttpResponse:
        return api.create_response(request, body, status=status)

    def on_domain_error(request: HttpRequest, exc: Any) -> HttpResponse:
        return respond(request, exc.status, error_body(exc.code, exc.message, exc.field))

    def on_validation_error(request: HttpRequest, exc: Any) -> HttpResponse:
        field, message = validation_message(exc.errors[0] if exc.errors else {})
        return respond(request, 400, error_body("invalid", message, field))

    def on_http_error(request: HttpRequest, exc: Any) -> HttpResponse:
        cause = exc.__cause__
        if isinstance(cause, DomainError):  # raised by the body parser, wrapped by ninja
            return on_domain_error(request, cause)
        code = CODES.get(exc.status_code, "error")
        return respond(request, exc.status_code, error_body(code, str(exc)))

    def on_too_big(request: HttpRequest, exc: Any) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is larger than the {limit} bytes this server accepts."
        return respond(request, 413, error_body("too_large", message))

    def on_unreadable(request: HttpRequest, exc: Any) -> HttpResponse:
        message = "The request body could not be read completely; send it again."
        return respond(request, 400, error_body("invalid", message))

    def on_404(request: HttpRequest, exc: Any) -> HttpResponse:
        return respond(request, 404, error_body("not_found", "Not found."))

    def on_database_error(request: HttpRequest, exc: Any) -> HttpResponse:
        trouble = database_trouble(exc)
        logger.error(
            "Database error (%s) in %s %s: %s", trouble.code, request.method, request.path, exc
        )
        response = respond(request, trouble.status, error_body(trouble.code, trouble.message))
        if trouble.retry_after:
            response["Retry-After"] = trouble.retry_after
        return response

    def on_storage_error(request: HttpRequest, exc: Any) -> HttpResponse:
        if isinstance(exc, PartBusy):
            return respond(request, 409, error_body("part_busy", str(exc)))
        if isinstance(exc, StorageFull):  # freeing space, not waiting, fixes it
            return respond(request, 507, error_body("insufficient_storage", str(exc)))
        logger.warning("Object store error in %s %s: %s", request.method, request.path, exc)
        response = respond(
            request, 503, error_body("storage_unavailable", f"{exc} Nothing was changed.")
        )
        response["Retry-After"] = "5"
        return response

    def on_anything_else(request: HttpRequest, exc: Any) -> HttpResponse:
        logger.exception("Unhandled error in %s %s", request.method, request.path)
        message = "The server failed to handle this request; the error has been logged."
        return respond(request, 500, error_body("internal_error", message))

    api.add_exception_handler(DomainError, on_domain_error)
    api.add_exception_handler(ValidationError, on_validation_error)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(RequestDataTooBig, on_too_big)
    api.add_exception_handler(UnreadablePostError, on_unreadable)
    api.add_exception_handler(Http404, on_404)
    api.add_exception_handler(OperationalError, on_database_error)
    api.add_exception_handler(InterfaceError, on_database_error)
    api.add_exception_handler(StorageError, on_storage_error)
    api.add_exception_handler(Exception, on_anything_else)
