"""Durable Objects, both sides of the call.

Caller side: `DurableObjectNamespace` implements `SessionNamespace` over the `CONVERSATIONS` binding
(`idFromName` → `get` → `stub.fetch`), turning `SessionRequest`/`SessionResponse` into a fetch.

Object side: what `durable_objects.cloudflare.ConversationSession` needs to host the platform-neutral
core: `DurableObjectStorage` (the `SessionStorage` port over `ctx.storage`), `read_session_request`
(JS Request → `SessionRequest`) and `to_js_response` (`SessionResponse` → JS Response); the
hibernatable sockets and the SSE sink (`JsEventSink`).

Worker side: `match_stream` recognises a conversation's live streams (WebSocket, SSE), and
`closed_socket_response` refuses one; `fastest.edge.conversation_streams` opens them and hands them
to the object.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from fastest.platform import session_values
from fastest.platform.cloudflare.interop import field, from_js, is_null, to_bytes, to_str_dict
from fastest.ports import SessionRequest, SessionResponse

# Requests to a stub need an absolute URL; the host is never resolved (the stub routes them).
SESSION_ORIGIN = "https://session.internal"


# --------------------------------------------------------------------------------------------------
# Caller side
# --------------------------------------------------------------------------------------------------


def fetch_options(request: SessionRequest) -> dict[str, Any]:
    """The `fetch` options for a `SessionRequest` (a body only when there is one: GET has none)."""
    options: dict[str, Any] = {"method": request.method.upper()}
    if request.headers:
        options["headers"] = dict(request.headers)
    if request.body:
        options["body"] = bytes(request.body)
    return options


def session_url(path: str) -> str:
    return SESSION_ORIGIN + (path if path.startswith("/") else "/" + path)


async def _body_bytes(message: Any) -> bytes:
    """The whole body of a Response/Request: the SDK's `bytes()`, or JS `arrayBuffer()`."""
    read = getattr(message, "bytes", None)
    if callable(read):
        return to_bytes(await read())
    return to_bytes(await message.arrayBuffer())


async def read_session_response(response: Any) -> SessionResponse:
    return SessionResponse(
        status=int(field(response, "status")),
        body=await _body_bytes(response),
        headers=_headers(field(response, "headers")),
    )


class DurableObjectStub:
    """`SessionStub` over a Durable Object stub."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub

    async def fetch(self, request: SessionRequest) -> SessionResponse:
        response = await self._stub.fetch(session_url(request.path), **fetch_options(request))
        return await read_session_response(response)

    async def forward(self, request: Any, headers: dict[str, str] | None = None) -> Any:
        """Cloudflare only: pass a JS Request through and return the JS Response, for what a
        `SessionResponse` cannot carry (a WebSocket upgrade's 101 + socket). `headers` are set on
        it (over any the client sent of the same names)."""
        if headers:
            request = with_headers(request, headers)
        return await self._stub.fetch(request)


def with_headers(request: Any, headers: dict[str, str]) -> Any:
    """A copy of a Request (the SDK's, or a JS one) as a JS Request with these headers set over its
    own (an incoming request's headers are immutable). Method, URL, body and the WebSocket upgrade
    are the original's."""
    from js import Headers, Request  # type: ignore[import-not-found]

    raw = getattr(request, "js_object", request)  # the SDK's Request wraps the JS one
    copied = Headers.new(raw.headers)
    for name, value in headers.items():
        copied.set(name, value)
    return Request.new(raw, headers=copied)


class DurableObjectNamespace:
    """`SessionNamespace` over a Durable Object namespace binding: one object per name."""

    def __init__(self, binding: Any) -> None:
        self._binding = binding

    def get(self, name: str) -> DurableObjectStub:
        return DurableObjectStub(self._binding.get(self._binding.idFromName(name)))


# --------------------------------------------------------------------------------------------------
# Object side
# --------------------------------------------------------------------------------------------------


class DurableObjectStorage:
    """`SessionStorage` over `ctx.storage` (the SQLite-backed key-value API of the object).

    Values are stored as JSON text (`session_values`): a str crosses into JavaScript as a JS
    string, where a dict or list would cross as a proxy (PyProxy) for the runtime to clone.
    """

    def __init__(self, storage: Any) -> None:
        self._storage = storage

    async def get(self, key: str) -> Any:
        return stored_value(await self._storage.get(key))

    async def put(self, key: str, value: Any) -> None:
        await self._storage.put(key, session_values.encode(key, value))

    async def delete(self, key: str) -> bool:
        return bool(from_js(await self._storage.delete(key)))

    async def list(
        self, *, prefix: str = "", start: str | None = None, end: str | None = None,
        reverse: bool = False, limit: int | None = None,
    ) -> dict[str, Any]:
        result = await self._storage.list(**list_options(prefix=prefix, start=start, end=end, reverse=reverse, limit=limit))
        return {str(key): stored_value(value) for key, value in (from_js(result) or {}).items()}

    # Alarms (`SessionAlarms`): the runtime calls the object's `alarm()` handler when one is due.
    async def set_alarm(self, scheduled_ms: int) -> None:
        await self._storage.setAlarm(int(scheduled_ms))

    async def get_alarm(self) -> int | None:
        value = from_js(await self._storage.getAlarm())
        return None if value is None else int(value)

    async def delete_alarm(self) -> None:
        await self._storage.deleteAlarm()


def stored_value(raw: Any) -> Any:
    """A value read back: the JSON text `put` wrote, decoded; absent (JS undefined) → None. A
    value an object stored before values were text (a structured clone) comes back as it is."""
    raw = from_js(raw)
    return session_values.decode(raw) if isinstance(raw, str) else raw


def list_options(*, prefix: str, start: str | None, end: str | None, reverse: bool, limit: int | None) -> dict[str, Any]:
    """`ctx.storage.list`'s options object (as keyword arguments): only the options given. The
    runtime lists natively in reverse, from `end` down."""
    given = (("prefix", prefix or None), ("start", start), ("end", end), ("reverse", reverse or None), ("limit", limit))
    return {name: value for name, value in given if value is not None}


def object_name(ctx: Any) -> str:
    """The name the object was addressed by (`idFromName`), else its hex id."""
    object_id = field(ctx, "id")
    name = field(object_id, "name")
    return str(name) if not is_null(name) and name != "" else str(object_id.toString())


def _headers(headers: Any) -> dict[str, str]:
    """Headers as a dict with lower-case names (JS Headers, the SDK's HTTPMessage, or a dict)."""
    if is_null(headers):
        return {}
    items = getattr(headers, "items", None)
    pairs = items() if callable(items) else to_str_dict(headers).items()
    return {str(k).lower(): str(v) for k, v in pairs}


def headers_of(message: Any) -> dict[str, str]:
    """A JS Request's or Response's headers, with lower-case names."""
    return _headers(field(message, "headers"))


def _method(method: Any) -> str:
    """The SDK gives an `http.HTTPMethod`, a raw JS Request a string."""
    return str(getattr(method, "value", method)).upper()


async def read_session_request(request: Any) -> SessionRequest:
    url = urlsplit(str(field(request, "url")))
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return SessionRequest(
        method=_method(field(request, "method")),
        path=path,
        body=await _body_bytes(request),
        headers=_headers(field(request, "headers")),
    )


# Bodies are not allowed with these statuses (Fetch spec "null body status").
NULL_BODY_STATUSES = frozenset({101, 103, 204, 205, 304})


def to_js_response(response: SessionResponse) -> Any:
    from workers import Response  # type: ignore[import-not-found]

    body = None if response.status in NULL_BODY_STATUSES or not response.body else bytes(response.body)
    return Response(body, status=response.status, headers=dict(response.headers) or None)


# --------------------------------------------------------------------------------------------------
# Object side: hibernatable WebSockets
# --------------------------------------------------------------------------------------------------


def wants_websocket(request: Any) -> bool:
    headers = field(request, "headers")
    get = getattr(headers, "get", None)
    upgrade = get("upgrade") if callable(get) else _headers(headers).get("upgrade")
    return str(upgrade or "").lower() == "websocket"


def query_of(request: Any) -> dict[str, str]:
    """The query string of a JS Request as a dict (the last value of a repeated name wins)."""
    from urllib.parse import parse_qsl

    return dict(parse_qsl(urlsplit(str(field(request, "url"))).query))


class JsSocket:
    """The core's `Socket` over a JS WebSocket. Equal (and hashed) by the JS object, so the wrapper
    made for a `webSocketMessage` is the same socket as the one in `ctx.getWebSockets()`."""

    __slots__ = ("ws",)

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @property
    def grant(self) -> dict[str, Any] | None:
        """The token that opened this stream (`conversations.streams`), kept with the socket by the
        runtime across hibernation (`serializeAttachment`, as JSON text)."""
        read = getattr(self.ws, "deserializeAttachment", None)
        raw = read() if callable(read) else None
        if is_null(raw) or not isinstance(raw, str):
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @grant.setter
    def grant(self, value: dict[str, Any]) -> None:
        self.ws.serializeAttachment(json.dumps(value))

    def send(self, text: str) -> None:
        self.ws.send(text)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.ws.close(code, reason)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsSocket) and (other.ws is self.ws or other.ws == self.ws)

    def __hash__(self) -> int:
        return 0  # JS proxies have no stable Python hash; sets of sockets are small

    def upgrade_response(self, client: Any) -> Any:
        from workers import Response  # type: ignore[import-not-found]

        return Response(None, status=101, web_socket=client)


class HibernatableSockets:
    """The core's socket set: the runtime's list of accepted WebSockets (it survives hibernation),
    plus the event streams (SSE) open on this instance, which the runtime does not hold (an open
    stream is a request in flight: the object does not hibernate meanwhile)."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self._streams: list[Any] = []

    def add(self, socket: Any) -> None:
        if not isinstance(socket, JsSocket) and socket not in self._streams:  # the runtime holds WebSockets
            self._streams.append(socket)

    def discard(self, socket: Any) -> None:
        if socket in self._streams:
            self._streams.remove(socket)

    def __iter__(self):
        return iter([*(JsSocket(ws) for ws in self._ctx.getWebSockets()), *self._streams])


class JsEventSink:
    """Where an event stream's records go: the writable side of a `TransformStream` whose readable
    side is the Response body. `write` hands each record to the stream without waiting (the stream
    queues them, in order); `disconnected` completes when the client has gone (the runtime cancels
    the body, which errors the writable side)."""

    def __init__(self) -> None:
        from js import TextEncoder, TransformStream  # type: ignore[import-not-found]

        pair = TransformStream.new()
        self.body = pair.readable
        self._writer = pair.writable.getWriter()
        self._encoder = TextEncoder.new()
        self._open = True

    def write(self, text: str) -> None:
        if self._open:
            self._writer.write(self._encoder.encode(text))

    def end(self) -> None:
        if self._open:
            self._open = False
            self._writer.close()

    async def disconnected(self) -> None:
        try:
            await self._writer.closed
        except Exception:  # errored: the client went away
            pass
        self._open = False

    def response(self, headers: dict[str, str]) -> Any:
        """The streaming Response: the readable side as its body."""
        from workers import Response  # type: ignore[import-not-found]

        return Response(self.body, status=200, headers=headers)


def accept_websocket(ctx: Any) -> tuple[Any, JsSocket]:
    """A WebSocketPair whose server end the runtime holds (`ctx.acceptWebSocket`): (client, socket)."""
    from js import WebSocketPair  # type: ignore[import-not-found]

    client, server = WebSocketPair.new().object_values()
    ctx.acceptWebSocket(server)
    return client, JsSocket(server)


def background(ctx: Any):
    """The core's `spawn`: run a turn as a task the runtime waits for (`ctx.waitUntil`)."""
    import asyncio

    def spawn(coroutine: Any) -> Any:
        task = asyncio.ensure_future(coroutine)
        wait_until = getattr(ctx, "waitUntil", None)
        if callable(wait_until):
            wait_until(task)
        return task

    return spawn


# --------------------------------------------------------------------------------------------------
# Worker side: the conversation stream's upgrade
# --------------------------------------------------------------------------------------------------

_LIVE_PATH = re.compile(r"^/v1/conversations/([A-Za-z0-9_]{1,64})/(stream|events)$")
STREAM, EVENTS = "stream", "events"


def match_stream(method: str, path: str) -> tuple[str, str] | None:
    """`(conversation id, kind)` for `GET /v1/conversations/{id}/stream` (the WebSocket, kind
    STREAM) and `GET …/events` (SSE, kind EVENTS): the live streams the Worker hands to the
    conversation's Durable Object."""
    found = _LIVE_PATH.match(path) if _method(method) == "GET" else None
    return (found.group(1), found.group(2)) if found else None


def wants_event_stream(request: Any) -> bool:
    """In the object: a forwarded `GET …/events` (its URL is the client's)."""
    matched = match_stream(field(request, "method"), urlsplit(str(field(request, "url"))).path)
    return matched is not None and matched[1] == EVENTS


def closed_socket_response(code: int, reason: str) -> Any:
    """Accept the upgrade only to close it with `code`, so the client sees the close code (4401…)."""
    from js import WebSocketPair  # type: ignore[import-not-found]
    from workers import Response  # type: ignore[import-not-found]

    client, server = WebSocketPair.new().object_values()
    server.accept()
    server.close(code, reason)
    return Response(None, status=101, web_socket=client)
