"""The project activity log: every write to a project appends one event.

Writers do not insert events themselves: they add `record(...)` to the batch that makes the change,
so the change and its event land together or not at all.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from fastest.platform import Platform
from fastest.ports import Statement
from fastest.services.common import dumps, new_id, now_iso, split_page
from fastest.services.events.reactions import Event, in_batch


def record(
    platform: Platform,
    project_id: str,
    actor: str,
    type: str,
    summary: str,
    data: Mapping[str, Any] | None = None,
    *,
    touch: bool = True,
) -> list[Statement]:
    """Statements that append the event and, for changes (`touch`), mark the project as updated.

    Add them to the batch that makes the change. Audited reads (a secret reveal) pass touch=False.
    """
    now = now_iso(platform)
    event_id = new_id(platform, "evt")
    statements = [
        platform.db.prepare(
            "INSERT INTO project_events (id, project_id, actor, type, summary, data, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        ).bind(event_id, project_id, actor, type, summary, dumps(dict(data or {})), now),
    ]
    # Whoever reacts to this event (the webhook outbox) adds its writes to the same batch.
    statements += in_batch(platform, Event(type=type, project_id=project_id, actor=actor, data=dict(data or {}),
                                           id=event_id, summary=summary, created_at=now))
    if touch:
        statements.append(
            platform.db.prepare("UPDATE projects SET updated_at = ?, last_activity_at = ? WHERE id = ?").bind(
                now, now, project_id
            )
        )
    return statements


def event_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "actor": row["actor"],
        "summary": row["summary"],
        "data": json.loads(row["data"]),
        "created_at": row["created_at"],
    }


async def page(
    platform: Platform, project_id: str, *, limit: int, before_seq: int | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paginated by insertion order (`seq`; ids only sort to the millisecond)."""
    after, args = ("AND seq < ?", [before_seq]) if before_seq is not None else ("", [])
    stmt = platform.db.prepare(
        f"SELECT * FROM project_events WHERE project_id = ? {after} ORDER BY seq DESC LIMIT ?"
    ).bind(project_id, *args, limit + 1)
    rows, next_cursor = split_page((await stmt.all()).results, limit, lambda r: (r["seq"],))
    return [event_view(r) for r in rows], next_cursor
