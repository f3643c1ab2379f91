"""The Cloudflare side of conversations, against fakes of the documented shapes: the stream route
match, `?since=`, the hibernatable socket set, and the core driving sockets it did not create."""

from __future__ import annotations

import asyncio
import json

from durable_objects.conversation_session import ConversationSession
from durable_objects.session.sse import EventStream
from fastest.edge.conversation_streams import since_of
from fastest.platform.cloudflare.durable_objects import (
    HibernatableSockets,
    JsSocket,
    match_stream,
    wants_event_stream,
    wants_websocket,
)


class FakeWebSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None

    def send(self, text: str) -> None:
        self.sent.append(text)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class FakeCtx:
    def __init__(self, sockets: list[FakeWebSocket]) -> None:
        self._sockets = sockets

    def getWebSockets(self) -> list[FakeWebSocket]:
        return list(self._sockets)


class FakeRequest:
    def __init__(self, url: str, headers: dict[str, str], method: str = "GET") -> None:
        self.url = url
        self.headers = headers
        self.method = method


class MemoryStorage:
    def __init__(self) -> None:
        self.data: dict[str, object] = {}

    async def get(self, key):
        return self.data.get(key)

    async def put(self, key, value):
        self.data[key] = json.loads(json.dumps(value))

    async def delete(self, key):
        return self.data.pop(key, None) is not None

    async def list(self, *, prefix="", start=None, end=None, reverse=False, limit=None):
        keys = [k for k in sorted(self.data, reverse=reverse)
                if k.startswith(prefix) and (start is None or k >= start) and (end is None or k < end)]
        return {k: self.data[k] for k in keys[:limit]}


def test_stream_route_and_upgrade_parsing():
    assert match_stream("GET", "/v1/conversations/cnv_01ABC/stream") == ("cnv_01ABC", "stream")
    assert match_stream("GET", "/v1/conversations/cnv_01ABC/events") == ("cnv_01ABC", "events")
    assert match_stream("POST", "/v1/conversations/cnv_01ABC/stream") is None
    assert match_stream("POST", "/v1/conversations/cnv_01ABC/events") is None
    assert match_stream("GET", "/v1/conversations/cnv_01ABC/streams") is None
    assert match_stream("GET", "/v1/conversations/../x/stream") is None
    request = FakeRequest("https://x/v1/conversations/c/stream?token=t&since=42", {"upgrade": "websocket"})
    assert wants_websocket(request) and since_of(request) == 42 and not wants_event_stream(request)
    assert since_of(FakeRequest("https://x/s?since=abc", {})) is None
    assert not wants_websocket(FakeRequest("https://x/", {}))
    events = FakeRequest("https://x/v1/conversations/c/events?since=3", {"Last-Event-ID": "7"})
    assert wants_event_stream(events) and not wants_websocket(events) and since_of(events) == 7
    assert not wants_event_stream(FakeRequest("https://x/context", {}, method="GET"))


def test_core_broadcasts_to_the_runtimes_sockets_and_replays_since():
    a, b = FakeWebSocket(), FakeWebSocket()
    ctx = FakeCtx([a])
    core = ConversationSession("cnv_x", MemoryStorage(), sockets=HibernatableSockets(ctx))

    async def scenario():
        await core.emit("one", {"n": 1})
        ctx._sockets.append(b)  # accepted after event 1, replaying from 0
        await core.attach(JsSocket(b), 0)
        await core.emit("two", {"n": 2})
        await core.receive(JsSocket(a), json.dumps({"type": "ping"}))

    asyncio.run(scenario())
    assert [json.loads(t)["type"] for t in a.sent] == ["one", "two", "pong"]
    assert [json.loads(t)["type"] for t in b.sent] == ["one", "ready", "two"]
    assert JsSocket(a) == JsSocket(a) and JsSocket(a) != JsSocket(b)


def test_a_since_beyond_the_head_is_brought_back():
    ws = FakeWebSocket()
    core = ConversationSession("cnv_x", MemoryStorage(), sockets=HibernatableSockets(FakeCtx([ws])))

    async def scenario():
        await core.emit("one", {})
        await core.emit("two", {})
        await core.attach(JsSocket(ws), 99)
        await core.attach(JsSocket(ws), 1)
        await core.attach(JsSocket(ws), None)

    asyncio.run(scenario())
    frames = [json.loads(t) for t in ws.sent]
    readies = [f["data"]["last_event_id"] for f in frames if f["type"] == "ready"]
    assert readies == [2, 2, 2]
    assert [f["id"] for f in frames] == [1, 2, None, 2, None, None]


class Sink:
    """What the object writes an event stream into (JsEventSink without the TransformStream)."""

    def __init__(self) -> None:
        self.records: list[str] = []
        self.ended = False

    def write(self, text: str) -> None:
        self.records.append(text)

    def end(self) -> None:
        self.ended = True


def test_event_streams_share_the_broadcast_with_the_runtimes_websockets():
    """An SSE client is not a WebSocket the runtime holds: the socket set keeps it for the life of
    the instance, next to ctx.getWebSockets(), and lets it go on detach."""
    ws = FakeWebSocket()
    sockets = HibernatableSockets(FakeCtx([ws]))
    core = ConversationSession("cnv_x", MemoryStorage(), sockets=sockets)
    sink = Sink()
    stream = EventStream(sink.write, sink.end)

    async def scenario():
        await core.emit("one", {})
        await core.attach(JsSocket(ws), None)  # the runtime holds it already: not kept twice
        await core.attach(stream, 0)
        await core.emit("two", {})
        core.detach(stream)
        await core.emit("three", {})

    asyncio.run(scenario())
    assert [json.loads(t)["type"] for t in ws.sent] == ["one", "ready", "two", "three"]
    assert [r.split("\n")[-4] for r in sink.records] == ["event: one", "event: ready", "event: two"]
    assert list(sockets) == [JsSocket(ws)]


class HibernatingWebSocket(FakeWebSocket):
    """A WebSocket with the runtime's attachment, which survives hibernation (only text kept here)."""

    def __init__(self) -> None:
        super().__init__()
        self.attachment = None

    def serializeAttachment(self, value) -> None:
        assert isinstance(value, str)  # structured-clonable as it is
        self.attachment = value

    def deserializeAttachment(self):
        return self.attachment


def test_sockets_end_with_their_token_across_hibernation():
    """The grant is kept with the runtime's socket, so a new instance (after hibernation) still
    closes the streams of a revoked token (4401) and leaves the others open; an expired one is
    closed at the next event instead of receiving it."""
    from datetime import datetime, timezone

    from fastest.platform.local.clock import ManualClock

    revoked, kept, expiring = HibernatingWebSocket(), HibernatingWebSocket(), HibernatingWebSocket()
    ctx = FakeCtx([revoked, kept, expiring])
    storage = MemoryStorage()
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    platform = type("P", (), {"clock": clock})()
    far = clock.now().timestamp() + 3600

    async def scenario():
        first = ConversationSession("cnv_x", storage, platform=platform, sockets=HibernatableSockets(ctx))
        await first.attach(JsSocket(revoked), None, {"token_id": "tok_a", "expires_at": far})
        await first.attach(JsSocket(kept), None, {"token_id": "tok_b", "expires_at": far})
        await first.attach(JsSocket(expiring), None, {"token_id": "tok_c", "expires_at": clock.now().timestamp() + 10})
        woken = ConversationSession("cnv_x", storage, platform=platform, sockets=HibernatableSockets(ctx))
        assert woken.close_streams("tok_a") == 1
        clock.advance(11)
        await woken.emit("after", {})

    asyncio.run(scenario())
    assert revoked.closed == (4401, "token_revoked") and expiring.closed == (4401, "token_expired")
    assert kept.closed is None and json.loads(kept.sent[-1])["type"] == "after"
    assert all(json.loads(t)["type"] != "after" for t in expiring.sent)
