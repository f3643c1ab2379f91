"""The analysis queue of action items: a workspace whose tree moved is queued in the same batch
as the snapshot that moved it (`snapshots.insert_statements`), and analysed first by the
`refresh-action-items` job and the next listing (`services.action_items.refresh`).

Its own module, importing nothing but the platform, so the snapshot service can call it without
an import cycle."""

from __future__ import annotations

from fastest.platform import Platform
from fastest.ports import Statement


def queue_statement(platform: Platform, workspace_id: str, now: str) -> Statement:
    return platform.db.prepare(
        "INSERT INTO action_item_queue (workspace_id, queued_at) VALUES (?, ?) "
        "ON CONFLICT (workspace_id) DO UPDATE SET queued_at = excluded.queued_at"
    ).bind(workspace_id, now)


def dequeue_statement(platform: Platform, workspace_id: str) -> Statement:
    return platform.db.prepare("DELETE FROM action_item_queue WHERE workspace_id = ?").bind(workspace_id)
