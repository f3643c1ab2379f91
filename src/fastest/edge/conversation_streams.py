"""The Worker's edge for a conversation's live streams: `GET /v1/conversations/{id}/stream` (the
WebSocket) and `GET …/events` (SSE) terminate in the conversation's Durable Object, which the ASGI
bridge cannot hand a socket to (and whose SSE body never ends). `src/entry.py` recognises them
(`platform.cloudflare.durable_objects.match_stream`), opens them here by the local routes' rules, and
forwards them; the object reads where the replay starts with `since_of`, by the same rule.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastest.edge.reply import EdgeReply
from fastest.errors import ApiError
from fastest.platform.cloudflare.durable_objects import (
    STREAM,
    closed_socket_response,
    headers_of,
    query_of,
)
from fastest.platform.cloudflare.interop import field
from fastest.services import conversations

__all__ = ["forward_stream", "grant_of", "since_of"]


def since_of(request: Any) -> int | None:
    """Where a forwarded stream's replay starts (`Last-Event-ID`, else `?since=`), read by the
    same rule the Worker validated it with; None if it is not an event id (the Worker refused those)."""
    try:
        return conversations.stream_since(query_of(request), headers_of(request))
    except ApiError:
        return None


def grant_of(request: Any) -> dict[str, Any] | None:
    """The grant the Worker forwarded the stream with (the token that opened it: it closes the
    stream when that token expires or is revoked)."""
    return conversations.grant_of(headers_of(request))


async def forward_stream(conversation_id: str, kind: str, request: Any, platform: Any, *, respond: Any = None) -> Any:
    """Open the stream by the local routes' rules (`conversations.open_stream`: `?token=` or a bearer
    header, the caller's own conversation, a valid `?since=` / `Last-Event-ID`) and hand the request
    to the conversation's Durable Object, which accepts the socket or streams the events.

    Refusals: a WebSocket closes 4401 / 4403 / 4404 / 4400; SSE gets the problem+json the local
    route gives. SSE answers carry the app's headers (request id, security headers, CORS) around
    the object's streaming body. `respond` builds a Response (tests pass their own)."""
    reply = EdgeReply(request, platform, respond, route_class="default")
    path = urlsplit(str(field(request, "url"))).path
    try:
        opened = await conversations.open_stream(
            platform, conversation_id, query_of(request), headers_of(request), on_rate_decision=reply.rate_decided,
        )
    except ApiError as error:
        if kind == STREAM:
            return closed_socket_response(conversations.stream_close_code(error.status), error.code)
        return reply.problem(error, path)
    response = await platform.sessions.get(conversation_id).forward(request, opened.grant_headers())
    if kind == STREAM:
        return response
    return reply.stream(field(response, "body"), int(field(response, "status")), headers_of(response))
