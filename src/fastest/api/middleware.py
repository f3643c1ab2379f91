"""Pure-ASGI middleware around the whole app (cheaper than BaseHTTPMiddleware on the hot path).

For every HTTP request it: attaches the platform, assigns or echoes `X-Request-Id`, bounds the request
body (413 before reading when `Content-Length` says so, or as soon as the stream passes the limit),
refuses a JSON body nested deeper than any parser here may go (400 `invalid_json`, raised by the body's
last read, before anyone parses it), adds `RateLimit` headers decided during the request and security
headers, and turns any unexpected exception into a 500 problem that leaks nothing.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastest.api.errors import internal_error_response, problem_response
from fastest.config import Settings
from fastest.domain.untrusted_text import MAX_JSON_DEPTH, json_too_deep
from fastest.errors import InvalidJson, PayloadTooLarge
from fastest.platform import Platform
from fastest.ports import D1_MAX_VALUE_BYTES
from fastest.services.safeguards.rate_limits import rate_limit_headers

log = logging.getLogger("fastest")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Routes that carry blobs rather than JSON get the blob limit (the blob routes enforce their own too),
# and so does a batch of manifests; one manifest may be as large as a D1 value, which is more than a
# JSON request.
_BLOB_BODY_PREFIXES = ("/v1/blobs/upload/", "/v1/blobs/batch", "/v1/blobs/manifests/batch")
_MANIFEST_BODY_PREFIX = "/v1/blobs/manifests/"
_OWN_PARSER_PREFIXES = (*_BLOB_BODY_PREFIXES, _MANIFEST_BODY_PREFIX)

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def body_limit(path: str, settings: Settings) -> int:
    if path.startswith(_BLOB_BODY_PREFIXES):
        return settings.blob_max_bytes
    if path.startswith(_MANIFEST_BODY_PREFIX):
        return max(settings.max_body_bytes, D1_MAX_VALUE_BYTES)
    return settings.max_body_bytes


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, platform_provider: Callable[[Scope], Platform]) -> None:
        self.app = app
        self.platform_provider = platform_provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # WebSocket routes (conversation streams) need the platform too; the rest is HTTP's.
            scope.setdefault("state", {})["platform"] = self.platform_provider(scope)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        platform = self.platform_provider(scope)
        state["platform"] = platform
        request_id = request_id_for(_incoming_request_id(scope))
        state["request_id"] = request_id
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                decided = state.get("rate_limit")
                if decided is not None and not any(k.lower() == b"ratelimit" for k, _ in headers):
                    for name, value in rate_limit_headers(*decided).items():
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        limit = body_limit(scope["path"], platform.settings)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await problem_response(_too_large(limit), scope)(scope, receive, send_with_headers)
            return

        received = 0
        # FastAPI parses JSON bodies itself, and its parser recurses: a body nested deep enough raises
        # RecursionError here, and on the Worker (Pyodide) overflows the WebAssembly stack, which
        # kills the isolate. So a JSON body's depth is checked when its last part arrives; only a body
        # with more brackets than MAX_JSON_DEPTH is scanned (routes carrying blobs or manifests read
        # their bodies with their own parsers, which check depth themselves).
        json_parts: list[bytes] | None = [] if _is_json(scope) and not scope["path"].startswith(_OWN_PARSER_PREFIXES) else None
        brackets = 0

        async def bounded_receive() -> Message:
            nonlocal received, brackets
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise _too_large(limit)
                if json_parts is not None:
                    if body:
                        json_parts.append(body)
                        brackets += body.count(b"[") + body.count(b"{")
                    if brackets > MAX_JSON_DEPTH and not message.get("more_body", False) and json_too_deep(b"".join(json_parts)):
                        raise InvalidJson(f"The request body nests deeper than {MAX_JSON_DEPTH} levels.")
            return message

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except Exception:
            log.exception("unhandled error (request %s)", request_id)
            if not response_started:
                await internal_error_response(scope)(scope, receive, send_with_headers)


def request_id_for(incoming: str | None) -> str:
    """The request's id: the client's `X-Request-Id` when it is a sane token, else a new one."""
    if incoming is not None and _REQUEST_ID.match(incoming):
        return incoming
    return f"req_{secrets.token_hex(12)}"


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes.", extra={"limit_bytes": limit})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def _incoming_request_id(scope: Scope) -> str | None:
    value = _header(scope, b"x-request-id")
    if value is None:
        return None
    text = value.decode("latin-1")
    return text if _REQUEST_ID.match(text) else None


def _is_json(scope: Scope) -> bool:
    """Whether the body is one FastAPI parses as JSON (`application/json` or `application/…+json`)."""
    value = _header(scope, b"content-type")
    if value is None:
        return False
    media_type = value.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (media_type.startswith(b"application/") and media_type.endswith(b"+json"))


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
