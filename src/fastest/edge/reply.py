"""The headers the app's middleware would add, for the requests the Worker answers without the app.

`src/entry.py` serves two kinds of request around the ASGI app (blob bodies, `edge.blob_stream`;
conversation live streams, `edge.conversation_streams`). Their answers must look like the app's:
a request id, the security headers, the RateLimit headers of the route class, CORS for allowed
origins, and problem+json errors. `EdgeReply` adds them, and builds the runtime's Response through
a factory (`platform.cloudflare.interop.workers_response` on the Worker; tests pass their own).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from fastest.api.cors import EXPOSED_HEADERS
from fastest.api.errors import PROBLEM_MEDIA_TYPE, problem_body, request_instance
from fastest.api.middleware import SECURITY_HEADERS, request_id_for
from fastest.errors import ApiError
from fastest.platform import Platform
from fastest.platform.cloudflare.interop import is_null, workers_response
from fastest.ports import RateDecision
from fastest.services.safeguards.rate_limits import rate_limit_headers

__all__ = ["EdgeReply", "ResponseFactory"]

# build(body, status, headers) -> the runtime's Response; tests pass their own.
ResponseFactory = Callable[[Any, int, dict[str, str]], Any]


def request_header(request: Any, name: str) -> str | None:
    value = request.headers.get(name)
    return None if is_null(value) else str(value)


class EdgeReply:
    """The answer's common headers: what RequestContextMiddleware and CorsMiddleware add in the app,
    for the requests the Worker serves without it (these blobs, conversation streams)."""

    def __init__(self, request: Any, platform: Platform, build: ResponseFactory | None = None, route_class: str = "default") -> None:
        self.request_id = request_id_for(request_header(request, "x-request-id"))
        self.origin = request_header(request, "origin")
        self.platform = platform
        self.build = build or workers_response
        self.route_class = route_class
        self.rate_limit: tuple[str, RateDecision] | None = None

    def rate_decided(self, decision: RateDecision) -> None:
        self.rate_limit = (self.route_class, decision)

    def headers(self, own: dict[str, str]) -> dict[str, str]:
        headers = dict(own)
        headers["X-Request-Id"] = self.request_id
        headers.update({k.decode(): v.decode() for k, v in SECURITY_HEADERS})
        if self.rate_limit is not None and not any(k.lower() == "ratelimit" for k in headers):
            headers.update(rate_limit_headers(*self.rate_limit))
        if self.origin is not None and self.origin in self.platform.settings.allowed_origins:
            headers.update(
                {
                    "Access-Control-Allow-Origin": self.origin,
                    "Vary": "Origin",
                    "Access-Control-Expose-Headers": EXPOSED_HEADERS.decode(),
                }
            )
        return headers

    def json(self, payload: dict[str, Any], status: int) -> Any:
        body = json.dumps(payload, ensure_ascii=False)
        return self.build(body, status, self.headers({"Content-Type": "application/json"}))

    def problem(self, error: ApiError, path: str) -> Any:
        scope = {"state": {"request_id": self.request_id}, "path": path}
        body = json.dumps(problem_body(error, instance=request_instance(scope)), ensure_ascii=False)
        return self.build(body, error.status, self.headers({**error.headers, "Content-Type": PROBLEM_MEDIA_TYPE}))

    def stream(self, body: Any, status: int, headers: dict[str, str]) -> Any:
        return self.build(body, status, self.headers(headers))
