"""What a conversation's session stores under which keys, and what every part of
`ConversationSession` shares: refusals, frames, JSON answers, ids and times."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from fastest.platform import Platform
from fastest.ports import SessionResponse, SessionStorage

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
# The conversation's session on its OpenCode server, once OpenCode has answered it.
OPENCODE_SESSION_KEY = "meta:opencode_session"
EVENT_PREFIX = "event:"
MESSAGE_PREFIX = "msg:"
QUESTION_PREFIX = "question:"
DEPLOYMENT_PREFIX = "deployment:"


class Socket(Protocol):
    """A client connection (a WebSocket, or an SSE stream). `send` must not block: it queues."""

    def send(self, text: str) -> None: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...


class _Refusal(Exception):
    """A request the session refuses: becomes a JSON error response, or an `error` frame."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}, **self.extra}


def _json(status: int, body: Any) -> SessionResponse:
    return SessionResponse(status=status, body=json.dumps(body).encode(), headers={"content-type": "application/json"})


def _frame(type_: str, data: Any, event_id: int | None = None) -> str:
    return json.dumps({"type": type_, "id": event_id, "data": data}, ensure_ascii=False)


def _send(socket: Socket, text: str) -> None:
    try:
        socket.send(text)
    except Exception:  # a client gone mid-send is detached by its own close handler
        log.debug("send to a closed client dropped")


def _message_key(seq: int) -> str:
    return f"{MESSAGE_PREFIX}{seq:012d}"


class SessionPart:
    """The state every part of `ConversationSession` (the mixins of this package) works on; it is
    set up by `ConversationSession.__init__`."""

    name: str
    storage: SessionStorage
    platform: Platform | None
    sockets: Any

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
