"""The JSON API under /v1, in the shape of the hosted platform's API.

One NinjaAPI, one router module per resource (artifacts, binaries, parts, signing, downloads,
audit), mounted at the bottom of this file. Handlers stay thin: authenticate (auth), read
through selectors, write through services, answer with the schemas' shapes.
"""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from ninja import NinjaAPI
from ninja.errors import ValidationError, ValidationErrorContext
from pydantic import BaseModel

from binaries.api import artifacts, audit, binaries, downloads, parts, signing
from binaries.api.auth import ApiKeyAuth, ConsoleSessionAuth
from binaries.api.errors import JSONBodyParser, error_body, install_error_handlers
from binaries.serializers import platform_wire
from peridio_console.core.wire import wants_platform


class PeridioAPI(NinjaAPI):
    def create_response(
        self,
        request: HttpRequest,
        data: Any,
        *,
        status: int | None = None,
        temporal_response: HttpResponse | None = None,
    ) -> HttpResponse:
        """Every answer, success or error, in the wire format the request asked for."""
        if wants_platform(request):
            code = temporal_response.status_code if temporal_response else status or 200
            data = platform_wire(data, code)
        return super().create_response(
            request, data, status=status, temporal_response=temporal_response
        )

    def validation_error_from_error_contexts(
        self, error_contexts: list[ValidationErrorContext]
    ) -> ValidationError:
        """Keep what came (ninja drops it) and, for unknown fields, the fields accepted."""
        errors: list[dict[str, Any]] = []
        for context in error_contexts:
            model = context.model
            for error in context.pydantic_validation_error.errors(include_url=False):
                item: dict[str, Any] = dict(error)
                loc = model.__ninja_flatten_map_reverse__.get(item["loc"], item["loc"])
                item["loc"] = (model.__ninja_param_source__, *loc)
                if isinstance((item.get("ctx") or {}).get("error"), Exception):
                    item["ctx"] = {**item["ctx"], "error": str(item["ctx"]["error"])}
                if item["type"] == "extra_forbidden":
                    item["accepted"] = _accepted_fields(model, item["loc"])
                errors.append(item)
        return ValidationError(errors)


def _accepted_fields(model: Any, loc: tuple[Any, ...]) -> list[str]:
    param = model.model_fields.get(loc[1]) if len(loc) > 1 else None
    schema = getattr(param, "annotation", None)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return list(schema.model_fields)
    return []


api = PeridioAPI(
    title="Peridio Console API",
    version="1",
    description="Artifacts, artifact versions and binaries. Authenticate with "
    "`Authorization: Bearer <API key>`.",
    urls_namespace="api",
    auth=[ConsoleSessionAuth(), ApiKeyAuth()],
    parser=JSONBodyParser(),
    openapi_url="/openapi.json",
    docs_url="/docs",
    docs_decorator=require_safe,  # the schema and the docs are read-only: GET and HEAD
)
install_error_handlers(api)


# --- Mounting: one router module per resource. ------------------------------------------

api.add_router("/artifacts", artifacts.artifacts)
api.add_router("/artifact_versions", artifacts.artifact_versions)
api.add_router("/binaries", binaries.router)
api.add_router("/", parts.router)
api.add_router("/signing_keys", signing.signing_keys)
api.add_router("/binary_signatures", signing.binary_signatures)
api.add_router("/", downloads.router)
api.add_router("/", audit.router)


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Unknown paths under /v1 answer in the API's shape, not with an HTML page."""
    return api.create_response(request, error_body("not_found", "No such API path."), status=404)
