"""`ConversationSession`: the platform-neutral core of the per-conversation Durable Object.

One instance exists per conversation id (DESIGN.md §6). It owns, in its own storage:

- the **context**: owner, project, workspace and the base manifest of the working tree;
- the **event log**: every frame sent to clients is an event `{type, id, data}` with a monotonic id,
  stored before it is sent, so a client reconnecting with `since=<id>` gets exactly what it missed;
- the **messages** (OpenAI chat format: user, assistant with `tool_calls`, tool results);
- **pending questions** (the `ask_question` tool; answered by the reply/reject routes);
- the **working-tree overlay** (`fastest.services.working_tree`).

It answers `SessionRequest`s (`fetch`) and WebSocket traffic (`attach` / `receive` / `detach`).
The Cloudflare wrapper (`durable_objects.cloudflare`) and the local namespace
(`fastest.platform.local.sessions`) only translate. The agent turn runs as a background task
(`spawn`), so requests keep being served while the model streams; `_busy` makes it one turn at a
time: a second prompt while one runs is refused with 409 `turn_in_progress`, never interleaved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Any, Awaitable, Callable, Protocol

from fastest.errors import AIRateLimited, ApiError
from fastest.platform import Platform
from fastest.ports import AIError, AIModel, SessionRequest, SessionResponse, SessionStorage

log = logging.getLogger("fastest.conversations")

CONTEXT_KEY = "context"
_CONTEXT_FIELDS = ("conversation_id", "user_id", "project_id", "workspace_id", "manifest_hash")
LAST_EVENT_KEY = "meta:last_event_id"
# The ids of the latest turn's `message.delta` events. They stay replayable until the next turn
# starts; then they are dropped, as `message.completed` holds their text, so the log grows by a few
# events per turn rather than by every streamed chunk.
DELTAS_KEY = "meta:delta_event_ids"
# The turn running now, kept while it runs: an object that starts and finds one left by its previous
# life (a restart, an eviction) ends it with `turn.failed` `interrupted`, so no client waits forever.
RUNNING_TURN_KEY = "meta:running_turn"
LAST_MESSAGE_KEY = "meta:last_message_seq"
EVENT_PREFIX = "event:"
MESSAGE_PREFIX = "msg:"
QUESTION_PREFIX = "question:"
DEPLOYMENT_PREFIX = "deployment:"
TIMELINE_LIMIT = 500
MESSAGES_PAGE_MAX = 100  # the most messages one page holds (`GET …/messages?limit=`)
TOOL_RESULT_LIMIT = 64 * 1024  # what a tool result may put into the model's context
# How much of the conversation the model is shown each round, newest first, in characters of
# content and tool calls (~100k tokens): a long conversation neither outgrows the model's context
# window nor makes each turn read the whole message log.
HISTORY_MAX_CHARS = 400_000
HISTORY_PAGE = 50
# One model message (its text plus its tool calls' arguments, e.g. a written file) is one storage
# entry; Durable Object entries hold at most 2 MB.
MESSAGE_MAX_BYTES = 1024 * 1024
# A turn waits this long for a question's answer, then goes on without (the turn must not hold the
# conversation forever: no other prompt can run meanwhile).
QUESTION_TIMEOUT_SECONDS = 30 * 60

SYSTEM_PROMPT = (
    "You are a coding agent working on the files of the user's workspace. Use the tools to list, "
    "read, write and delete files (paths are relative to the workspace root) and ask_question when "
    "you need the user to decide. Keep answers short; say what you changed."
)

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "list_files", "description": "List the files of the working tree (optionally under a directory).",
        "parameters": {"type": "object", "properties": {"path": {"type": "string", "description": "A directory; empty for all."}}},
    }},
    {"type": "function", "function": {
        "name": "read_file", "description": "Read a text file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }},
    {"type": "function", "function": {
        "name": "write_file", "description": "Create or replace a file with this content.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                       "required": ["path", "content"]},
    }},
    {"type": "function", "function": {
        "name": "delete_file", "description": "Delete a file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }},
    {"type": "function", "function": {
        "name": "ask_question", "description": "Ask the user and wait for the answer.",
        "parameters": {"type": "object", "properties": {
            "question": {"type": "string"},
            "options": {"type": "array", "items": {"type": "string"}},
        }, "required": ["question"]},
    }},
]


class Socket(Protocol):
    """A client connection (a WebSocket, or an SSE stream). `send` must not block: it queues."""

    def send(self, text: str) -> None: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...


# --------------------------------------------------------------------------------------------------
# Server-sent events: the stream's frames for clients without WebSockets (`GET …/events`). The
# framing is here, so the local route and the Durable Object send the same records.
# --------------------------------------------------------------------------------------------------

EVENT_STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
# Proxies (Cloudflare's among them) drop connections idle for long: a comment record keeps it open.
SSE_KEEPALIVE_SECONDS = 15.0
SSE_KEEPALIVE = ": keepalive\n\n"


def sse_record(text: str) -> str:
    """One frame (JSON text, one line) as an SSE record: `id:` for events (what EventSource sends
    back as `Last-Event-ID`), `event:` the frame's type, `data:` the frame itself."""
    frame = json.loads(text)
    head = f"id: {frame['id']}\n" if frame.get("id") is not None else ""
    return f"{head}event: {frame['type']}\ndata: {text}\n\n"


class EventStream:
    """A client (`Socket`) that receives the frames as SSE records through `write`, which must not
    block (it queues, or hands the text to a stream); `close` ends the stream through `end`."""

    def __init__(self, write: Callable[[str], None], end: Callable[[], None]) -> None:
        self._write = write
        self._end = end

    def send(self, text: str) -> None:
        self._write(sse_record(text))

    def keepalive(self) -> None:
        self._write(SSE_KEEPALIVE)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._end()


class _Refusal(Exception):
    """A request the session refuses: becomes a JSON error response, or an `error` frame."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}, **self.extra}


class _TurnFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _json(status: int, body: Any) -> SessionResponse:
    return SessionResponse(status=status, body=json.dumps(body).encode(), headers={"content-type": "application/json"})


def _frame(type_: str, data: Any, event_id: int | None = None) -> str:
    return json.dumps({"type": type_, "id": event_id, "data": data}, ensure_ascii=False)


def _default_spawn(coroutine: Awaitable[Any]) -> asyncio.Task:
    return asyncio.ensure_future(coroutine)


class ConversationSession:
    def __init__(
        self,
        name: str,
        storage: SessionStorage,
        *,
        platform: Platform | None = None,
        sockets: Any = None,
        spawn: Callable[[Awaitable[Any]], Any] = _default_spawn,
    ) -> None:
        self.name = name
        self.storage = storage
        self.platform = platform
        # The connected clients. Locally a set this object owns; on Cloudflare a view over
        # `ctx.getWebSockets()` (the runtime keeps them across hibernation).
        self.sockets = sockets if sockets is not None else set()
        self._spawn = spawn
        self._last_event_id: int | None = None
        self._busy = False
        self._turn_task: Any = None
        self._waiting: dict[str, asyncio.Future] = {}
        # Clients still replaying, by socket (sockets compare by the connection they wrap: on
        # Cloudflare each pass over ctx.getWebSockets() gives new wrapper objects).
        self._replaying: dict[Any, list[tuple[int, str]]] = {}
        self._recovered = False

    # ----------------------------------------------------------------------------------------------
    # Requests
    # ----------------------------------------------------------------------------------------------

    async def recover(self) -> None:
        """Once per life of the object: end a turn its previous life left running."""
        if self._recovered:
            return
        self._recovered = True
        turn_id = await self.storage.get(RUNNING_TURN_KEY)
        if turn_id is not None and not self._busy:
            await self.storage.delete(RUNNING_TURN_KEY)
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {
                "code": "interrupted", "message": "The server stopped while this turn ran; send the prompt again."}})

    async def fetch(self, request: SessionRequest) -> SessionResponse:
        path, _, query = request.path.partition("?")
        method = request.method.upper()
        await self.recover()
        try:
            if (method, path) == ("PUT", "/context"):
                return await self._put_context(request)
            context = await self.storage.get(CONTEXT_KEY)
            if context is None:
                return _json(404, {"error": {"code": "not_initialized", "message": "This conversation was never created."}})
            body = self._body(request) if method in ("POST", "PATCH") else {}
            return await self._route(method, path, _query(query), body, context)
        except _Refusal as refusal:
            return _json(refusal.status, refusal.body())
        except ApiError as error:
            return _json(error.status, {"error": {"code": error.code, "message": error.message}, **error.extra})

    async def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any], context: dict[str, Any]) -> SessionResponse:
        if (method, path) == ("GET", "/context"):
            return _json(200, {"context": context})
        if (method, path) == ("PATCH", "/context"):
            return await self._patch_context(body, context)
        if (method, path) == ("POST", "/messages"):
            return _json(202, await self.prompt(body.get("prompt"), context))
        if (method, path) == ("GET", "/messages"):
            return _json(200, await self._messages_page(query))
        if (method, path) == ("GET", "/opencode-messages"):
            return _json(200, await self._opencode_messages())
        if (method, path) == ("POST", "/clear"):
            return _json(200, await self.clear())
        if (method, path) == ("GET", "/timeline"):
            return _json(200, {"timeline": await self.timeline()})
        if (method, path) == ("GET", "/project-info"):
            return _json(200, await self._project_info(context))
        if (method, path) == ("GET", "/files/changes"):
            return _json(200, {"manifest_hash": context.get("manifest_hash"), "snapshot_id": context.get("snapshot_id"),
                               "changes": await self._tree(context).overlay()})
        if (method, path) == ("POST", "/files/rebase"):
            return _json(200, await self._rebase(body, context))
        if (method, path) == ("GET", "/deployments"):
            deployments = await self.storage.list(prefix=DEPLOYMENT_PREFIX)
            return _json(200, {"deployments": list(deployments.values())})
        if (match := re.fullmatch(r"/deployments/([^/]+)/logs", path)) and method == "GET":
            deployment = await self.storage.get(DEPLOYMENT_PREFIX + match.group(1))
            if deployment is None:
                raise _Refusal(404, "not_found", "Deployment not found.")
            return _json(200, {"logs": deployment.get("logs", [])})
        if (match := re.fullmatch(r"/questions/([^/]+)/(reply|reject)", path)) and method == "POST":
            if match.group(2) == "reply":
                await self.answer(match.group(1), body.get("answers"))
            else:
                await self.answer(match.group(1), None)
            return _json(200, {"success": True})
        if path.startswith("/run/"):  # action-item runs (durable_objects.runs)
            from durable_objects import runs

            handled = await runs.route(self, method, path, body, context)
            if handled is not None:
                return handled
        return _json(404, {"error": {"code": "no_such_route", "message": "No such route."}})

    async def alarm(self) -> None:
        """The object's alarm (DO `alarm()`): carries an action-item run on (durable_objects.runs)."""
        from durable_objects import runs

        await runs.alarm(self)

    @staticmethod
    def _body(request: SessionRequest) -> dict[str, Any]:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise _Refusal(400, "invalid_json", "The body is not JSON.") from None
        if not isinstance(body, dict):
            raise _Refusal(422, "validation_failed", "The body must be a JSON object.")
        return body

    async def _put_context(self, request: SessionRequest) -> SessionResponse:
        body = self._body(request)
        if not all(isinstance(body.get(f), (str, type(None))) for f in _CONTEXT_FIELDS):
            return _json(422, {"error": {"code": "validation_failed", "message": "Context fields are strings."}})
        context = {f: body.get(f) for f in _CONTEXT_FIELDS}
        await self.storage.put(CONTEXT_KEY, context)
        return _json(200, {"context": context})

    async def _patch_context(self, body: dict[str, Any], context: dict[str, Any]) -> SessionResponse:
        """Move to another workspace of the same project: its manifest becomes the base; the
        overlay (the agent's edits) stays on top."""
        for name in ("workspace_id", "manifest_hash"):
            if name in body and isinstance(body[name], (str, type(None))):
                context[name] = body[name]
        await self.storage.put(CONTEXT_KEY, context)
        await self.emit("conversation.updated", {"workspace_id": context["workspace_id"]})
        return _json(200, {"context": context})

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

    async def attach(self, socket: Socket, since: int | None = None) -> None:
        """Connect a client: replay every event after `since` (when given), then live events, with
        nothing lost or repeated in between; then a `ready` frame (not an event: no id) saying where
        the client now is (a `since` beyond the log's head is brought back to the head)."""
        await self.recover()
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

    def detach(self, socket: Socket) -> None:
        if hasattr(self.sockets, "discard"):
            self.sockets.discard(socket)
        self._replaying.pop(socket, None)

    async def receive(self, socket: Socket, text: str | bytes) -> None:
        """One client frame: `ping`, `prompt` `{prompt}`, `question.reply` `{request_id, answers}`,
        `question.reject` `{request_id}`. Anything wrong gets an `error` frame (no id)."""
        await self.recover()
        limit = self._settings_value("conversation_max_frame_bytes", 64 * 1024)
        size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
        if size > limit:
            _send(socket, _frame("error", {"code": "frame_too_large", "message": f"Frames are at most {limit} bytes."}))
            return
        try:
            frame = json.loads(text)
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise ValueError
        except ValueError:
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
                from fastest.services import rate_limits

                await rate_limits.enforce(self._require_platform(), context["user_id"], "ai")
                accepted = await self.prompt(data.get("prompt"), context)
                _send(socket, _frame("prompt.accepted", accepted))
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

    # ----------------------------------------------------------------------------------------------
    # Messages
    # ----------------------------------------------------------------------------------------------

    def _now(self) -> str:
        from fastest.services.common import now_iso

        return now_iso(self._require_platform())

    def _new_id(self, prefix: str) -> str:
        from fastest.services.common import new_id

        return new_id(self._require_platform(), prefix)

    def _require_platform(self) -> Platform:
        if self.platform is None:
            raise _Refusal(503, "unavailable", "This session object has no platform to chat with.")
        return self.platform

    async def _add_message(self, message: dict[str, Any]) -> dict[str, Any]:
        seq = int(await self.storage.get(LAST_MESSAGE_KEY) or 0) + 1
        await self.storage.put(LAST_MESSAGE_KEY, seq)
        message = {"id": message.get("id") or self._new_id("msg"), "seq": seq, "created_at": self._now(), **message}
        await self.storage.put(_message_key(seq), message)
        return message

    async def messages(self) -> list[dict[str, Any]]:
        return list((await self.storage.list(prefix=MESSAGE_PREFIX)).values())

    async def _messages_page(self, query: dict[str, str]) -> dict[str, Any]:
        """The last `limit` messages created before `before` (all when absent), oldest first: read
        backwards from where `before` falls, `limit` + 1 of them (the extra one says `has_more`)."""
        raw_limit = query.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MESSAGES_PAGE_MAX:
            raise _Refusal(422, "validation_failed", f"limit is 1 to {MESSAGES_PAGE_MAX}.", fields={"limit": "out of range"})
        limit, before = int(raw_limit), query.get("before")
        end = await self._first_message_key_at(before) if before is not None else None
        page = await self.storage.list(prefix=MESSAGE_PREFIX, end=end, reverse=True, limit=limit + 1)
        messages = [m for m in page.values() if before is None or m["created_at"] < before]
        return {"messages": messages[:limit][::-1], "has_more": len(messages) > limit}

    async def _first_message_key_at(self, before: str) -> str | None:
        """The key of the first message created at or after `before` (None: there is none).

        Messages are stored by a sequence number and created in that order, so their times rise
        with it: a binary search over the sequence finds where `before` falls with a handful of
        single-entry reads, instead of reading every newer message. Each probe lists from its
        position (`start`, `limit=1`), so a gap in the sequence does no harm."""
        first = await self.storage.list(prefix=MESSAGE_PREFIX, limit=1)
        last = await self.storage.list(prefix=MESSAGE_PREFIX, reverse=True, limit=1)
        if not first or next(iter(last.values()))["created_at"] < before:
            return None
        low, high = next(iter(first.values()))["seq"], next(iter(last.values()))["seq"]
        while low < high:  # the answer lies in [low, high]; the message at `high` is at or after
            middle = (low + high) // 2
            probe = next(iter((await self.storage.list(prefix=MESSAGE_PREFIX, start=_message_key(middle), limit=1)).values()))
            if probe["created_at"] >= before:
                high = middle
            else:
                low = probe["seq"] + 1
        return _message_key(low)

    async def _opencode_messages(self) -> dict[str, Any]:
        """Each message as OpenCode-style parts (text, tool), keyed by message id; a tool result is
        attached to the part of the call it answers."""
        parts: dict[str, list[dict[str, Any]]] = {}
        calls: dict[str, dict[str, Any]] = {}
        for message in await self.messages():
            if message["role"] == "tool":
                part = calls.get(message.get("tool_call_id", ""))
                if part is not None:
                    part["state"] = {"status": "completed", "output": message["content"]}
                continue
            own = parts.setdefault(message["id"], [])
            if message.get("content"):
                own.append({"type": "text", "text": message["content"]})
            for call in message.get("tool_calls") or ():
                part = {"type": "tool", "call_id": call["id"], "tool": call["function"]["name"],
                        "input": call["function"]["arguments"], "state": {"status": "pending"}}
                calls[call["id"]] = part
                own.append(part)
        return {"messages": parts}

    async def timeline(self) -> list[dict[str, Any]]:
        """The last `TIMELINE_LIMIT` events without the streamed deltas (each turn's text is in its
        completed message), oldest first: read backwards from the head, page by page, until that
        many are found (only the latest turn's deltas are still in the log to be skipped)."""
        kept: list[dict[str, Any]] = []
        end: str | None = None
        while len(kept) < TIMELINE_LIMIT:
            wanted = TIMELINE_LIMIT - len(kept)
            page = await self.storage.list(prefix=EVENT_PREFIX, end=end, reverse=True, limit=wanted)
            kept += [event for event in page.values() if event["type"] != "message.delta"]
            if len(page) < wanted:  # the start of the log
                break
            end = next(reversed(page))  # the oldest key read: the next page ends before it
        return kept[::-1]

    async def clear(self) -> dict[str, Any]:
        if self._busy:
            raise _Refusal(409, "turn_in_progress", "A turn is running; clear when it is done.")
        cleared = 0
        for prefix in (MESSAGE_PREFIX, QUESTION_PREFIX, EVENT_PREFIX):
            for key in await self.storage.list(prefix=prefix):
                await self.storage.delete(key)
                cleared += prefix == MESSAGE_PREFIX
        await self.emit("conversation.cleared", {"messages_cleared": cleared})
        return {"success": True, "cleared": cleared}

    async def _project_info(self, context: dict[str, Any]) -> dict[str, Any]:
        from fastest.services.working_tree import OVERLAY_PREFIX

        overlay = await self.storage.list(prefix=OVERLAY_PREFIX)
        return {
            "project_id": context["project_id"], "workspace_id": context["workspace_id"],
            "manifest_hash": context["manifest_hash"], "changed_files": len(overlay),
        }

    # ----------------------------------------------------------------------------------------------
    # The agent turn
    # ----------------------------------------------------------------------------------------------

    async def _model(self, context: dict[str, Any]) -> AIModel:
        from fastest.services import models

        return await models.for_user(self._require_platform(), context["user_id"])

    async def _spend(self, context: dict[str, Any], model: AIModel) -> None:
        """One unit of the AI budget per model call (the builtin engine is not a model: free)."""
        from fastest.services import ai_budget, models

        if not models.is_model(model):
            return

        await ai_budget.spend(self._require_platform(), context["user_id"])

    async def prompt(self, prompt: Any, context: dict[str, Any]) -> dict[str, Any]:
        """Start a turn: record the user's message and answer it in the background. 409 while a
        turn runs; 413 for an oversized prompt; 429 `ai_rate_limited` when the budget is spent."""
        platform = self._require_platform()
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Refusal(422, "validation_failed", "A prompt is a non-empty string.", fields={"prompt": "required"})
        limit = platform.settings.conversation_max_prompt_bytes
        if len(prompt.encode("utf-8")) > limit:
            raise _Refusal(413, "payload_too_large", f"A prompt is at most {limit} bytes.")
        if self._busy:
            raise _Refusal(409, "turn_in_progress", "A turn is already running in this conversation; wait for turn.completed.")
        self._busy = True  # taken before the first await: a concurrent prompt sees it
        try:
            model = await self._model(context)
            await self._spend(context, model)
            first = not await self.storage.list(prefix=MESSAGE_PREFIX, limit=1)
            await self._drop_previous_deltas()
            message = await self._add_message({"role": "user", "content": prompt})
            turn_id = self._new_id("trn")
            await self.emit("message.created", {"message": message})
            await self.emit("turn.started", {"turn_id": turn_id, "provider": model.provider, "model": model.model})
            await self.storage.put(RUNNING_TURN_KEY, turn_id)
            if first:
                from fastest.services import conversations

                await conversations.auto_title(platform, self.name, prompt)
        except BaseException:
            self._busy = False
            raise
        self._turn_task = self._spawn(self._run_turn(turn_id, model, context))
        return {"message": message, "turn_id": turn_id}

    async def _drop_previous_deltas(self) -> None:
        """Forget the streamed chunks of earlier turns (their messages keep the text)."""
        for event_id in await self.storage.get(DELTAS_KEY) or []:
            await self.storage.delete(f"{EVENT_PREFIX}{event_id:012d}")
        await self.storage.delete(DELTAS_KEY)

    async def _remember_deltas(self, event_ids: list[int]) -> None:
        if event_ids:
            await self.storage.put(DELTAS_KEY, [*(await self.storage.get(DELTAS_KEY) or []), *event_ids])

    async def _recent_messages(self) -> list[dict[str, Any]]:
        """The newest messages within `HISTORY_MAX_CHARS`, oldest first, read backwards page by
        page. Always back to the latest user message (the prompt being answered); when older ones
        are left out, it starts at a user message, so no tool result is shown without its call."""
        newest_first: list[dict[str, Any]] = []
        size = 0
        seen_prompt = truncated = False
        end: str | None = None
        while not truncated:
            page = await self.storage.list(prefix=MESSAGE_PREFIX, end=end, reverse=True, limit=HISTORY_PAGE)
            for message in page.values():
                size += len(message.get("content") or "") + len(json.dumps(message.get("tool_calls") or []))
                if size > HISTORY_MAX_CHARS and seen_prompt:
                    truncated = True
                    break
                newest_first.append(message)
                seen_prompt = seen_prompt or message["role"] == "user"
            if len(page) < HISTORY_PAGE:  # the start of the log
                break
            end = next(reversed(page))  # the oldest key read: the next page ends before it
        while truncated and newest_first[-1]["role"] != "user":
            newest_first.pop()
        return newest_first[::-1]

    async def _history(self) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
        for message in await self._recent_messages():
            item = {"role": message["role"], "content": message.get("content") or ""}
            if message.get("tool_calls"):
                item["tool_calls"] = message["tool_calls"]
            if message["role"] == "tool":
                item["tool_call_id"] = message.get("tool_call_id", "")
            history.append(item)
        return history

    async def _run_turn(self, turn_id: str, model: AIModel, context: dict[str, Any]) -> None:
        try:
            rounds = self._require_platform().settings.conversation_max_tool_rounds
            for round_number in range(rounds):
                if round_number:
                    await self._spend(context, model)
                calls = await self._model_round(turn_id, model)
                if not calls:
                    break
                for call in calls:
                    await self._tool(turn_id, call, context)
            else:
                await self.emit("turn.failed", {"turn_id": turn_id, "error": {
                    "code": "tool_rounds_exceeded", "message": f"The model kept calling tools after {rounds} rounds."}})
                return
            await self.emit("turn.completed", {"turn_id": turn_id})
        except _TurnFailed as failure:
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": failure.code, "message": str(failure)}})
        except AIRateLimited as error:
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": error.code, "message": error.message}, **error.extra})
        except AIError as error:
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": "ai_unavailable", "message": str(error)}})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("conversation %s: turn %s failed", self.name, turn_id)
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": "internal", "message": "The turn failed."}})
        finally:
            self._busy = False
            self._turn_task = None
            with contextlib.suppress(Exception):
                await self.storage.delete(RUNNING_TURN_KEY)

    async def _model_round(self, turn_id: str, model: AIModel) -> list[dict[str, Any]]:
        """One model call: stream its text as `message.delta` events, store the message, return its
        tool calls."""
        message_id = self._new_id("msg")
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        done: dict[str, Any] = {}
        size = 0
        delta_ids: list[int] = []
        stream = model.stream(await self._history(), tools=TOOLS)
        try:
            async for event in stream:
                if event["type"] == "delta" and event["content"]:
                    text.append(event["content"])
                    size += len(event["content"].encode("utf-8"))
                    emitted = await self.emit("message.delta", {"message_id": message_id, "turn_id": turn_id, "delta": event["content"]})
                    delta_ids.append(emitted["id"])
                elif event["type"] == "tool_call":
                    calls.append({"id": event["id"], "type": "function",
                                  "function": {"name": event["name"], "arguments": event["arguments"]}})
                    size += len(str(event["arguments"]).encode("utf-8"))
                elif event["type"] == "done":
                    done = dict(event)
                if size > MESSAGE_MAX_BYTES:
                    # A stored message is one storage entry (2 MB on Durable Objects): stop reading.
                    raise _TurnFailed("message_too_large", f"The model's message passed {MESSAGE_MAX_BYTES} bytes; it was not kept.")
        finally:
            await self._remember_deltas(delta_ids)
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        message = {"id": message_id, "role": "assistant", "content": "".join(text), "turn_id": turn_id,
                   "provider": done.get("provider", model.provider), "model": done.get("model", model.model)}
        if calls:
            message["tool_calls"] = calls
        stored = await self._add_message(message)
        await self.emit("message.completed", {"message": stored})
        return calls

    def _tree(self, context: dict[str, Any]):
        from fastest.services.working_tree import WorkingTree

        return WorkingTree(self._require_platform(), self.storage, context["user_id"], context.get("manifest_hash"))

    async def _tool(self, turn_id: str, call: dict[str, Any], context: dict[str, Any]) -> None:
        name = call["function"]["name"]
        await self.emit("tool.call", {"turn_id": turn_id, "call_id": call["id"], "name": name, "arguments": call["function"]["arguments"]})
        ok = True
        try:
            arguments = json.loads(call["function"]["arguments"] or "{}")
            if not isinstance(arguments, dict):
                raise ValueError
        except ValueError:
            arguments, ok, result = {}, False, "Error: the arguments are not a JSON object."
        if ok:
            try:
                result = await self._run_tool(turn_id, call["id"], name, arguments, context)
            except ApiError as error:
                ok, result = False, f"Error: {error.message}"
        result = result[:TOOL_RESULT_LIMIT]
        await self._add_message({"role": "tool", "tool_call_id": call["id"], "name": name, "content": result, "turn_id": turn_id})
        await self.emit("tool.result", {"turn_id": turn_id, "call_id": call["id"], "name": name, "ok": ok, "result": result})

    async def _run_tool(self, turn_id: str, call_id: str, name: str, arguments: dict[str, Any], context: dict[str, Any]) -> str:
        tree = self._tree(context)
        if name == "list_files":
            files = await tree.list_files(str(arguments.get("path") or ""))
            return "\n".join(f"{f['path']} ({f['size']} bytes)" for f in files) or "(no files)"
        if name == "read_file":
            return await tree.read_file(arguments.get("path"))
        if name == "write_file":
            written = await tree.write_file(arguments.get("path"), arguments.get("content"))
            await self.emit("file.changed", {"turn_id": turn_id, "path": written["path"], "action": "created" if written["created"] else "modified",
                                             "hash": written["hash"], "size": written["size"]})
            return f"Wrote {written['path']} ({written['size']} bytes)."
        if name == "delete_file":
            deleted = await tree.delete_file(arguments.get("path"))
            await self.emit("file.changed", {"turn_id": turn_id, "path": deleted["path"], "action": "deleted"})
            return f"Deleted {deleted['path']}."
        if name == "ask_question":
            return await self._ask(turn_id, call_id, arguments)
        return f"Error: no tool named {name!r}."

    # ----------------------------------------------------------------------------------------------
    # Questions
    # ----------------------------------------------------------------------------------------------

    async def _ask(self, turn_id: str, call_id: str, arguments: dict[str, Any]) -> str:
        if getattr(self, "headless", False):  # an action-item run: no one to ask
            from durable_objects.runs import HEADLESS_ANSWER

            return HEADLESS_ANSWER
        question = str(arguments.get("question") or "").strip()
        if not question:
            return "Error: ask_question needs a question."
        options = [str(o) for o in arguments.get("options") or () if isinstance(o, (str, int, float))][:20]
        request_id = self._new_id("que")
        record = {"id": request_id, "turn_id": turn_id, "call_id": call_id, "status": "pending",
                  "questions": [{"question": question, "options": options}], "created_at": self._now()}
        await self.storage.put(QUESTION_PREFIX + request_id, record)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        try:
            await self.emit("question.asked", {"turn_id": turn_id, "request_id": request_id, "questions": record["questions"]})
            answers = await asyncio.wait_for(waiter, QUESTION_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            record.update(status="expired")
            await self.storage.put(QUESTION_PREFIX + request_id, record)
            await self.emit("question.expired", {"request_id": request_id})
            return "The user did not answer in time."
        finally:
            self._waiting.pop(request_id, None)
        if answers is None:
            return "The user declined to answer."
        return json.dumps({"answers": answers}, ensure_ascii=False)

    async def answer(self, request_id: str, answers: Any) -> None:
        """Reply to (answers: list of lists of strings) or reject (answers None) a pending question;
        a turn waiting on it resumes."""
        record = await self.storage.get(QUESTION_PREFIX + request_id) if request_id else None
        if record is None:
            raise _Refusal(404, "not_found", "No such question.")
        if record["status"] != "pending":
            raise _Refusal(409, "question_not_pending", f"This question was already {record['status']}.")
        if answers is not None and not (
            isinstance(answers, list) and all(isinstance(a, list) and all(isinstance(s, str) for s in a) for a in answers)
        ):
            raise _Refusal(422, "validation_failed", "answers is a list of lists of strings.", fields={"answers": "string[][]"})
        record.update(status="answered" if answers is not None else "rejected", answers=answers, answered_at=self._now())
        await self.storage.put(QUESTION_PREFIX + request_id, record)
        await self.emit("question." + record["status"], {"request_id": request_id, "answers": answers})
        waiter = self._waiting.get(request_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(answers)

    async def _rebase(self, body: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """A snapshot froze the overlay `frozen` into the tree `manifest_hash`: that tree becomes
        the base, and what was frozen leaves the overlay."""
        manifest_hash, frozen = body.get("manifest_hash"), body.get("frozen")
        if not isinstance(manifest_hash, str) or not isinstance(frozen, dict):
            raise _Refusal(422, "validation_failed", "manifest_hash and frozen are required.")
        await self._tree(context).rebase(frozen)
        context["manifest_hash"] = manifest_hash
        context["snapshot_id"] = body.get("snapshot_id")  # the parent of the next snapshot
        await self.storage.put(CONTEXT_KEY, context)
        await self.emit("conversation.snapshot", {"manifest_hash": manifest_hash, "snapshot_id": body.get("snapshot_id")})
        return {"context": context}


def _send(socket: Socket, text: str) -> None:
    try:
        socket.send(text)
    except Exception:  # a client gone mid-send is detached by its own close handler
        log.debug("send to a closed client dropped")


def _message_key(seq: int) -> str:
    return f"{MESSAGE_PREFIX}{seq:012d}"


def _query(query: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(query))

