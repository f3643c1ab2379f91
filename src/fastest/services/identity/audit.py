"""The security audit log of a user: sign-ins, tokens created and revoked, keys set and deleted,
secret reveals, device approvals and denials — each with time, request id and IP, never a secret.

Like project events, an audit entry is a statement added to the batch that makes the change, so the
change and its record land together or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from fastest.platform import Platform
from fastest.ports import Statement
from fastest.services.common import dumps, new_id, now_iso, split_page

MAX_USER_AGENT_CHARS = 256


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where a request came from, as far as the audit log is concerned."""

    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


def record(
    platform: Platform,
    user_id: str,
    type: str,
    summary: str,
    context: RequestContext,
    data: Mapping[str, Any] | None = None,
    *,
    if_changed: bool = False,
) -> Statement:
    """The statement that appends one security event (add it to the change's batch).

    `if_changed`: place it right after a guarded UPDATE/DELETE; the event is written only if that
    statement changed a row (SQLite's `changes()`), so a lost race leaves no false record.
    """
    agent = (context.user_agent or "")[:MAX_USER_AGENT_CHARS] or None
    values = "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1" if if_changed else "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    return platform.db.prepare(
        "INSERT INTO security_events (id, user_id, type, summary, data, request_id, ip, user_agent, created_at) "
        + values
    ).bind(
        new_id(platform, "aud"), user_id, type, summary, dumps(dict(data or {})), context.request_id, context.ip,
        agent, now_iso(platform),
    )


def event_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "summary": row["summary"],
        "data": json.loads(row["data"]),
        "request_id": row["request_id"],
        "ip": row["ip"],
        "user_agent": row["user_agent"],
        "created_at": row["created_at"],
    }


async def page(
    platform: Platform, user_id: str, *, limit: int, before_seq: int | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """The user's events, newest first, keyset-paginated by insertion order."""
    after, args = ("AND seq < ?", [before_seq]) if before_seq is not None else ("", [])
    stmt = platform.db.prepare(
        f"SELECT * FROM security_events WHERE user_id = ? {after} ORDER BY seq DESC LIMIT ?"
    ).bind(user_id, *args, limit + 1)
    rows, next_cursor = split_page((await stmt.all()).results, limit, lambda r: (r["seq"],))
    return [event_view(r) for r in rows], next_cursor
