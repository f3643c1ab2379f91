"""The event log and the clients that follow it: every frame sent is an event `{type, id, data}`
with a monotonic id, stored before it is sent, so a client reconnecting with `since=<id>` gets
exactly what it missed; client frames (`ping`, `prompt`, question answers) come in through `receive`."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable

from durable_objects.session.sse import SSE_KEEPALIVE_SECONDS, EventStream
from durable_objects.session.state import (
    CONTEXT_KEY,
    EVENT_PREFIX,
    LAST_EVENT_KEY,
    SessionPart,
    Socket,
    _frame,
    _Refusal,
    _send,
)
from fastest.domain.untrusted_text import parse_json
from fastest.errors import ApiError


class EventLog(SessionPart):
    """The event log and its clients (a part of `ConversationSession`)."""

    # ----------------------------------------------------------------------------------------------
    # Event log and clients
    # ----------------------------------------------------------------------------------------------

    async def _next_event_id(self) -> int:
        if self._last_event_id is None:
            stored = int(await self.storage.get(LAST_EVENT_KEY) or 0)
            if self._last_event_id is None:  # another emit may have loaded it meanwhile
                self._last_event_id = stored
        self._last_event_id += 1
        return self._last_event_id

    async def emit(self, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        """Record an event, then send it to every client (those still replaying get it after)."""
        event_id = await self._next_event_id()
        event = {"type": type_, "id": event_id, "data": data}
        await self.storage.put(f"{EVENT_PREFIX}{event_id:012d}", event)
        await self.storage.put(LAST_EVENT_KEY, event_id)
        text = json.dumps(event, ensure_ascii=False)
        for socket in list(self.sockets):
            if self._end_if_expired(socket):
                continue
            pending = self._replaying.get(socket)
            if pending is not None:
                pending.append((event_id, text))
            else:
                _send(socket, text)
        return event

    async def events_after(self, since: int) -> list[dict[str, Any]]:
        """What a client reconnecting with `since` missed: read from its position on, not the whole log."""
        events = await self.storage.list(prefix=EVENT_PREFIX, start=f"{EVENT_PREFIX}{since + 1:012d}")
        return [event for event in events.values() if event["id"] > since]

    async def attach(self, socket: Socket, since: int | None = None, grant: dict[str, Any] | None = None) -> None:
        """Connect a client: replay every event after `since` (when given), then live events, with
        nothing lost or repeated in between; then a `ready` frame (not an event: no id) saying where
        the client now is (a `since` beyond the log's head is brought back to the head).

        `grant`: the token that opened the stream, `{token_id, expires_at}` (POSIX seconds): the
        client is closed 4401 when that token expires or is revoked (`close_streams`)."""
        await self.recover()
        if grant is not None:
            socket.grant = grant
        self._replaying[socket] = []
        if hasattr(self.sockets, "add"):
            self.sockets.add(socket)
        try:
            head = await self._head()
            last = head if since is None else min(since, head)
            if since is not None:
                for event in await self.events_after(since):
                    _send(socket, json.dumps(event, ensure_ascii=False))
                    last = max(last, event["id"])
            for event_id, text in self._replaying[socket]:  # emitted while replaying
                if event_id > last:
                    _send(socket, text)
                    last = event_id
        finally:
            self._replaying.pop(socket, None)
        _send(socket, _frame("ready", {"conversation_id": self.name, "last_event_id": last, "turn_running": self._busy}))

    async def _head(self) -> int:
        """The id of the last event recorded."""
        if self._last_event_id is not None:
            return self._last_event_id
        return int(await self.storage.get(LAST_EVENT_KEY) or 0)

    async def hold(self, stream: EventStream, disconnected: Awaitable[Any], interval: float = SSE_KEEPALIVE_SECONDS) -> None:
        """Keep an attached event stream open until its client goes (`disconnected` completes): a
        keepalive record every `interval` seconds of the wait, then detach it. For runtimes that
        push records into a stream (the Durable Object); the local route pulls and keeps alive
        itself."""
        gone = asyncio.ensure_future(disconnected)
        try:
            while not gone.done():
                done, _ = await asyncio.wait({gone}, timeout=interval)
                if not done:
                    stream.keepalive()
        finally:
            gone.cancel()
            self.detach(stream)

    def close_streams(self, token_id: str) -> int:
        """Close (4401) every client whose stream that token opened: it was revoked. Its grant is
        voided too, so a frame it sent meanwhile is not acted on."""
        closed = 0
        for socket in list(self.sockets):
            grant = getattr(socket, "grant", None)
            if grant is not None and grant.get("token_id") == token_id:
                socket.grant = {**grant, "expires_at": 0, "revoked": True}
                self._end_if_expired(socket)
                closed += 1
        return closed

    def _end_if_expired(self, socket: Socket) -> bool:
        """Close (4401) and detach a client whose token has expired or was revoked."""
        grant = getattr(socket, "grant", None)
        if grant is None or (grant["expires_at"] > 0 and (
                self.platform is None or self.platform.clock.now().timestamp() < grant["expires_at"])):
            return False
        try:
            socket.close(4401, "token_revoked" if grant.get("revoked") else "token_expired")
        except Exception:  # already gone
            pass
        self.detach(socket)
        return True

    def detach(self, socket: Socket) -> None:
        if hasattr(self.sockets, "discard"):
            self.sockets.discard(socket)
        self._replaying.pop(socket, None)

    async def receive(self, socket: Socket, text: str | bytes) -> None:
        """One client frame: `ping`, `prompt` `{prompt}`, `abort` (the running turn), `question.reply`
        `{request_id, answers}`, `question.reject` `{request_id}`. Anything wrong gets an `error`
        frame (no id)."""
        await self.recover()
        if self._end_if_expired(socket):
            return
        limit = self._settings_value("conversation_max_frame_bytes", 64 * 1024)
        size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
        if size > limit:
            _send(socket, _frame("error", {"code": "frame_too_large", "message": f"Frames are at most {limit} bytes."}))
            return
        try:
            frame = parse_json(text)
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise ValueError
        except ValueError:  # Unparseable (nested too deep included) is one
            _send(socket, _frame("error", {"code": "invalid_frame", "message": 'A frame is a JSON object with a "type".'}))
            return
        data = frame.get("data") if isinstance(frame.get("data"), dict) else {}
        kind = frame["type"]
        try:
            if kind == "ping":
                _send(socket, _frame("pong", {"last_event_id": await self._head()}))
            elif kind == "prompt":
                context = await self.storage.get(CONTEXT_KEY)
                if context is None:
                    raise _Refusal(404, "not_found", "This conversation was never created.")
                # The AI rate class, as `POST …/messages` spends it in its authorization step.
                from fastest.services.safeguards import rate_limits

                await rate_limits.enforce(self._require_platform(), context["user_id"], "ai")
                accepted = await self.prompt(data.get("prompt"), context)
                _send(socket, _frame("prompt.accepted", accepted))
            elif kind == "abort":
                _send(socket, _frame("abort.accepted", await self.abort_turn()))
            elif kind in ("question.reply", "question.reject"):
                await self.answer(str(data.get("request_id", "")), data.get("answers") if kind == "question.reply" else None)
            else:
                raise _Refusal(422, "unknown_frame_type", f"Unknown frame type {kind!r}.")
        except _Refusal as refusal:
            _send(socket, _frame("error", {"status": refusal.status, **refusal.body()["error"], **refusal.extra}))
        except ApiError as error:
            _send(socket, _frame("error", {"status": error.status, "code": error.code, "message": error.message, **error.extra}))

    def _settings_value(self, name: str, default: int) -> int:
        return int(getattr(self.platform.settings, name)) if self.platform is not None else default
