"""`ConversationSession`: the platform-neutral core of the per-conversation Durable Object.

One instance exists per conversation id (DESIGN.md §6). It owns, in its own storage:

- the **context**: owner, project, workspace and the base manifest of the working tree;
- the **event log**: every frame sent to clients is an event `{type, id, data}` with a monotonic id,
  stored before it is sent, so a client reconnecting with `since=<id>` gets exactly what it missed;
- the **messages** (OpenAI chat format: user, assistant with `tool_calls`, tool results);
- **pending questions** (the `ask_question` tool; answered by the reply/reject routes);
- the **working-tree overlay** (`fastest.services.conversations.working_tree`).

It answers `SessionRequest`s (`fetch`) and WebSocket traffic (`attach` / `receive` / `detach`).
The Cloudflare wrapper (`durable_objects.cloudflare`) and the local namespace
(`fastest.platform.local.sessions`) only translate. The agent turn runs as a background task
(`spawn`), so requests keep being served while the model streams; `_busy` makes it one turn at a
time: a second prompt while one runs is refused with 409 `turn_in_progress`, never interleaved.

This module keeps the object's state and its request routing; the behaviour lives in the parts it
is made of (`durable_objects.session`): `events` (the event log and its clients), `messages`,
`turns` (the agent turn), `tools` (the file tools and the working tree), `questions`, `sse` (the
event-stream framing) and `state` (storage keys and the pieces they all share).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Awaitable, Callable

from durable_objects.session.events import EventLog
from durable_objects.session.messages import Messages
from durable_objects.session.opencode import OpenCodeTurns
from durable_objects.session.questions import Questions
from durable_objects.session.state import (
    _CONTEXT_FIELDS,
    CONTEXT_KEY,
    DEPLOYMENT_PREFIX,
    RUNNING_TURN_KEY,
    _json,
    _Refusal,
)
from durable_objects.session.tools import FileTools
from durable_objects.session.turns import TurnRunner
from fastest.domain.untrusted_text import Unparseable, parse_json
from fastest.errors import ApiError
from fastest.platform import Platform
from fastest.ports import SessionRequest, SessionResponse, SessionStorage


def _default_spawn(coroutine: Awaitable[Any]) -> asyncio.Task:
    return asyncio.ensure_future(coroutine)


class ConversationSession(EventLog, Messages, TurnRunner, OpenCodeTurns, FileTools, Questions):
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
        self._cancelled = False
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
        if (method, path) == ("POST", "/streams/close"):  # its token was revoked (conversations.streams)
            return _json(200, {"closed": self.close_streams(str(body.get("token_id", "")))})
        if (method, path) == ("PATCH", "/context"):
            return await self._patch_context(body, context)
        if (method, path) == ("POST", "/messages"):
            return _json(202, await self.prompt(body.get("prompt"), context))
        if (method, path) == ("GET", "/messages"):
            return _json(200, await self._messages_page(query))
        if (method, path) == ("POST", "/abort"):
            return _json(200, await self.abort_turn())
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
                               "changes": await self.working_tree(context).overlay()})
        if (method, path) == ("POST", "/files/rebase"):
            return _json(200, await self._rebase(body, context))
        if (method, path) == ("POST", "/deployments"):  # a deployment made from this conversation
            from durable_objects.conversation_deployments import record_deployment

            return _json(200, await record_deployment(self.storage, body))
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
            body = parse_json(request.body or b"{}")
        except Unparseable:
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


def _query(query: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(query))
