"""`ConversationSession`: the platform-neutral core of the per-conversation Durable Object.

One instance exists per conversation id, and the platform serializes requests to it (DESIGN.md §6),
so the core needs no locks of its own. It talks to its storage through `fastest.ports.SessionStorage`
and answers `SessionRequest`s: the Cloudflare wrapper (`durable_objects.cloudflare`) and the local
namespace (`fastest.platform.local.sessions`) both just translate requests in and out.

So far it holds the conversation's context (what it is attached to); the chat, event log and
WebSocket protocol build on this same dispatch.
"""

from __future__ import annotations

import json
from typing import Any

from fastest.ports import SessionRequest, SessionResponse, SessionStorage

CONTEXT_KEY = "context"
_CONTEXT_FIELDS = ("conversation_id", "user_id", "project_id", "workspace_id", "manifest_hash")


def _json(status: int, body: Any) -> SessionResponse:
    return SessionResponse(status=status, body=json.dumps(body).encode(), headers={"content-type": "application/json"})


class ConversationSession:
    def __init__(self, name: str, storage: SessionStorage) -> None:
        self.name = name
        self.storage = storage

    async def fetch(self, request: SessionRequest) -> SessionResponse:
        route = (request.method.upper(), request.path)
        if route == ("PUT", "/context"):
            return await self._put_context(request)
        if route == ("GET", "/context"):
            context = await self.storage.get(CONTEXT_KEY)
            return _json(200, {"context": context}) if context is not None else _json(404, {"error": "not_initialized"})
        return _json(404, {"error": "no_such_route"})

    async def _put_context(self, request: SessionRequest) -> SessionResponse:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _json(400, {"error": "invalid_json"})
        if not isinstance(body, dict) or not all(isinstance(body.get(f), (str, type(None))) for f in _CONTEXT_FIELDS):
            return _json(422, {"error": "validation_failed"})
        context = {field: body.get(field) for field in _CONTEXT_FIELDS}
        await self.storage.put(CONTEXT_KEY, context)
        return _json(200, {"context": context})
