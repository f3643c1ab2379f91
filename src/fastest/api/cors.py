"""CORS for the allow-listed browser origins (`FASTEST_CORS_ORIGINS`); everyone else gets no CORS
headers, so browsers keep other sites' scripts out. Bearer tokens travel in a header, never in
cookies, so credentials mode is not needed.

Starlette's CORSMiddleware wants its origins when the app is built; ours come from the platform's
settings, which on Workers are only known per request, hence this small middleware.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = b"Authorization, Content-Type, Idempotency-Key, X-Request-Id, Last-Event-ID"
EXPOSED_HEADERS = b"X-Request-Id, RateLimit, RateLimit-Policy, Retry-After, Idempotent-Replayed, ETag"
PREFLIGHT_MAX_AGE = b"600"


class CorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        platform = scope["state"]["platform"]
        if origin is None or origin.decode("latin-1") not in platform.settings.allowed_origins:
            await self.app(scope, receive, send)
            return
        vary = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None:
            headers = vary + [
                (b"access-control-allow-methods", ALLOWED_METHODS),
                (b"access-control-allow-headers", ALLOWED_HEADERS),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + vary + [(b"access-control-expose-headers", EXPOSED_HEADERS)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None
