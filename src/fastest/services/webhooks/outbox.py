"""The integration webhooks' side of a project event: which event types reach webhooks, and the one
statement that queues a message for each subscribed endpoint.

The webhooks' reaction to a recorded event (`endpoints.queue_messages`) adds `fan_out(...)` to the
batch that makes the change, so an event and its webhook messages commit together or not at all (a
transactional outbox), then asks the platform to deliver them soon. Writers need nothing more: any event whose type is in the
catalogue (or maps to it) reaches the endpoints of the project's owner that subscribed to it.
"""

from __future__ import annotations

from typing import Any, Mapping

from fastest.platform import Platform
from fastest.ports import Statement
from fastest.services.common import dumps

# The stable event types a webhook can subscribe to (docs/webhooks.md).
CATALOGUE: tuple[str, ...] = (
    "build.started",
    "build.completed",
    "build.failed",
    "deployment.started",
    "deployment.ready",
    "deployment.failed",
    "workspace.approval.requested",
    "workspace.approval.approved",
    "workspace.approval.rejected",
    "snapshot.created",
    "sync.executed",
    "action_item.run.ready",
    "conversation.turn.completed",
)
ALL = "*"

# Project event types recorded under another name than their webhook type.
ALIASES: dict[str, str] = {
    "workspace.synced": "sync.executed",
}


def webhook_type(event_type: str) -> str | None:
    """The webhook event type a project event is sent as, or None when it is not sent."""
    mapped = ALIASES.get(event_type, event_type)
    return mapped if mapped in CATALOGUE else None


def payload(webhook_event: str, timestamp: str, project_id: str, event_id: str, actor: str, summary: str,
            data: Mapping[str, Any]) -> str:
    """The Standard Webhooks payload `{type, timestamp, data}`, serialized once: every endpoint and
    every attempt gets these exact bytes."""
    return dumps({
        "type": webhook_event,
        "timestamp": timestamp,
        "data": {"event_id": event_id, "project_id": project_id, "actor": actor, "summary": summary, **dict(data)},
    })


def message_id(event_id: str) -> str:
    """The SQL prefix of the messages' ids: `msg_<event id>_<endpoint id>` (one per endpoint)."""
    return f"msg_{event_id}_"


def fan_out(platform: Platform, *, project_id: str, event_id: str, webhook_event: str, body: str,
            now: str) -> Statement:
    """INSERT … SELECT one pending message per enabled endpoint of the project's owner subscribed
    to `webhook_event` (or to everything), scoped to this project or to all of them."""
    return platform.db.prepare(
        "INSERT OR IGNORE INTO webhook_messages (id, endpoint_id, event_id, event_type, payload, status, attempts, "
        "next_attempt_at, created_at, updated_at) "
        "SELECT ? || e.id, e.id, ?, ?, ?, 'pending', 0, ?, ?, ? "
        "FROM webhook_endpoints e JOIN projects p ON p.id = ? AND p.user_id = e.user_id "
        "WHERE e.enabled = 1 AND (e.project_id IS NULL OR e.project_id = p.id) "
        "AND EXISTS (SELECT 1 FROM json_each(e.events) j WHERE j.value IN (?, '*'))"
    ).bind(message_id(event_id), event_id, webhook_event, body, now, now, now, project_id, webhook_event)
