"""Every error leaves as `application/problem+json` (RFC 9457) carrying an `error` object with a stable code.

This is the one place errors are rendered. Services raise `ApiError`s; FastAPI's validation errors
and Starlette's 404/405 are translated here; anything unexpected becomes a bare 500 that reveals
nothing but the request id.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from fastest.domain.untrusted_text import PARSE_ERRORS
from fastest.errors import (
    ApiError,
    Internal,
    InvalidJson,
    MethodNotAllowed,
    NotFound,
    ValidationFailed,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("fastest")


def problem_body(error: ApiError, *, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:fastest:problem:{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.message,
        "instance": instance,
        "error": {"code": error.code, "message": error.message},
    }
    if error.fields:
        body["error"]["fields"] = error.fields
    body.update(error.extra)
    return body


def request_instance(scope: Mapping[str, Any]) -> str:
    """The problem's `instance`: the request id, so a report can be matched to the logs."""
    request_id = scope.get("state", {}).get("request_id", "")
    return f"urn:fastest:request:{request_id}" if request_id else str(scope.get("path", ""))


def problem_response(error: ApiError, scope: Mapping[str, Any]) -> Response:
    payload = json.dumps(problem_body(error, instance=request_instance(scope)), ensure_ascii=False)
    return Response(payload, status_code=error.status, media_type=PROBLEM_MEDIA_TYPE, headers=error.headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    """('body', 'variables', 0, 'key') → 'variables.0.key'; query/path/header keep their source."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _field_message(error: Mapping[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    if error.get("type") == "missing":
        return "required"
    return str(error.get("msg", "invalid"))


def validation_problem(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidJson("The request body is not valid JSON.")
    fields: dict[str, str] = {}
    for e in errors:
        fields.setdefault(_field_path(tuple(e.get("loc", ()))), _field_message(e))
    return ValidationFailed("The request is invalid: see error.fields.", fields=fields)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route fully accepts at this path (Starlette's own Allow names one route's)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


def install(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        if exc.status >= 500:
            log.error("request failed: %s %s → %s", request.method, request.url.path, exc.code)
        return problem_response(exc, request.scope)

    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(validation_problem(exc), request.scope)

    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, ApiError):
            # FastAPI wraps errors raised while reading the body (e.g. our 413) in a 400.
            return problem_response(exc.__cause__, request.scope)
        if exc.status_code == 400 and isinstance(exc.__cause__, PARSE_ERRORS):
            # The body is JSON the parser gave up on (nested too deep: a RecursionError).
            return problem_response(InvalidJson("The body is not JSON this server can read."), request.scope)
        if exc.status_code == 404:
            error: ApiError = NotFound("No such route." if exc.detail == "Not Found" else str(exc.detail))
        elif exc.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            error = MethodNotAllowed(f"{request.method} is not allowed here; use {allow}.", headers={"Allow": allow})
        else:
            error = ApiError(str(exc.detail), headers=exc.headers)
            error.status, error.code, error.title = exc.status_code, f"http_{exc.status_code}", str(exc.detail)
        return problem_response(error, request.scope)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def internal_error() -> Internal:
    """The 500 for anything unexpected: it reveals nothing but the request id (in `instance`)."""
    return Internal("Something went wrong on our side. Quote the request id if you report it.")


def internal_error_response(scope: Mapping[str, Any]) -> Response:
    return problem_response(internal_error(), scope)
