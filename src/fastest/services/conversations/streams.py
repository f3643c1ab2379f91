"""Live streams (WebSocket, SSE) end with the token that opened them.

A stream is authenticated once, when it opens; after that its socket stays open. So each stream
carries a *grant* — the id of the token that opened it and when that token expires — into the
session object, which closes it (4401) once the token has expired (checked before each frame it
sends or receives), and when told the token was revoked (`close_token_streams`, called by the
routes that revoke tokens). Which conversations a token has streams on is recorded in D1
(`token_streams`), so a revocation reaches exactly those objects, on either runtime.

On Cloudflare the Worker opens the stream and forwards it to the Durable Object with the grant in
`GRANT_HEADERS`, set by the Worker over whatever the client sent (only the Worker can reach the
object); locally the route hands the grant to the in-process object directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from fastest.platform import Platform
from fastest.ports import SessionRequest
from fastest.services.common import now_iso

GRANT_TOKEN_HEADER = "x-fastest-stream-token"
GRANT_EXPIRES_HEADER = "x-fastest-stream-expires"
CLOSE_PATH = "/streams/close"


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """A stream that may open: where its replay starts, and its grant."""

    since: int | None
    token_id: str
    expires_at: float  # POSIX seconds

    def grant(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "expires_at": self.expires_at}

    def grant_headers(self) -> dict[str, str]:
        return {GRANT_TOKEN_HEADER: self.token_id, GRANT_EXPIRES_HEADER: repr(self.expires_at)}


def grant_of(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The grant a forwarded stream request carries (the Worker set it), or None."""
    token_id, expires = headers.get(GRANT_TOKEN_HEADER), headers.get(GRANT_EXPIRES_HEADER)
    if not token_id or not expires:
        return None
    try:
        return {"token_id": token_id, "expires_at": float(expires)}
    except ValueError:
        return None


async def record(platform: Platform, token_id: str, conversation_id: str) -> None:
    await platform.db.prepare(
        "INSERT OR IGNORE INTO token_streams (token_id, conversation_id, opened_at) VALUES (?, ?, ?)"
    ).bind(token_id, conversation_id, now_iso(platform)).run()


async def close_token_streams(platform: Platform, token_id: str) -> int:
    """Close (4401) every live stream the token opened, on each conversation it opened one on.
    Returns how many conversations were told."""
    rows = (
        await platform.db.prepare("SELECT conversation_id FROM token_streams WHERE token_id = ?").bind(token_id).all()
    ).results
    body = json.dumps({"token_id": token_id}).encode()
    for row in rows:
        await platform.sessions.get(row["conversation_id"]).fetch(SessionRequest(
            method="POST", path=CLOSE_PATH, body=body, headers={"content-type": "application/json"}))
    await platform.db.prepare("DELETE FROM token_streams WHERE token_id = ?").bind(token_id).run()
    return len(rows)
