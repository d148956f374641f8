"""The published OpenAPI schema of ``tidekit serve``: what each route really takes and answers.

The routes parse their bodies themselves (so a malformed body is a 400 in OpenAI's envelope, not
FastAPI's 422), which hides the request models from FastAPI's generator; :func:`route_docs` puts
them back as each route's request body and lists every status the route can answer (400, 404,
413, 415, 429 with ``Retry-After``, 500, 502, 504) with the error envelope's schema, and the
``text/event-stream`` form of a streamed 200. :func:`install_openapi` adds the models' schemas to
the document's components.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tidekit.serve._schema import ChatCompletionRequest, CompletionRequest, ResponsesRequest

__all__ = ["ErrorBody", "install_openapi", "route_docs"]

REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    """OpenAI's error object."""

    model_config = ConfigDict(title="ErrorDetail")

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """The body of every error response: ``{"error": {...}}``."""

    error: ErrorDetail


_ERRORS = {
    400: "Invalid request: a field, the JSON, its encoding, a prompt too long for the context, a seed or schema "
         "the backend cannot take.",
    404: "The model is not served here.",
    413: "The body is larger than --max-body-bytes (refused before it is read).",
    415: "The body is not JSON.",
    429: "The queue is full (--max-queue); retry after the Retry-After header's seconds.",
    500: "An internal error (a bug: please report it).",
    502: "The backend failed to answer.",
    504: "The request took longer than --request-timeout.",
}
_BODIES: dict[str, type[BaseModel]] = {"chat": ChatCompletionRequest, "completions": CompletionRequest,
                                       "responses": ResponsesRequest}
_STREAMS = {"chat": True, "completions": True, "responses": False}


def _error_responses(statuses: list[int]) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": _ERRORS[status], "model": ErrorBody}
        if status == 429:
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
        out[status] = entry
    return out


def route_docs(route: str) -> dict[str, Any]:
    """Keyword arguments for the route decorator of ``route``: its request body and responses."""
    if route == "health":
        return {"summary": "Liveness: 200 with the model name and the scheduler's queue (GET or HEAD)."}
    if route == "models":
        return {"summary": "The served model."}
    model = _BODIES[route]
    ok: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if _STREAMS[route]:
        ok["text/event-stream"] = {"schema": {"type": "string", "description": "Server-sent events (stream: true), "
                                                                               "ending with data: [DONE]."}}
    responses: dict[int | str, dict[str, Any]] = {200: {"description": "The reply.", "content": ok}}
    responses.update(_error_responses([400, 404, 413, 415, 429, 500, 502, 504]))
    return {
        "summary": model.__doc__.splitlines()[0] if model.__doc__ else route,
        "responses": responses,
        "openapi_extra": {"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}},
    }


def install_openapi(app: Any) -> None:
    """Make ``app.openapi()`` include the request models (and what they refer to) as components."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = base()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in _BODIES.values():
            found = model.model_json_schema(ref_template=REF, by_alias=True)
            for name, sub in found.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = found
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
