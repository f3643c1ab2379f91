"""Project events a conversation's Durable Object records (the hook is one line in the session), so
integration webhooks see `conversation.turn.completed`."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from fastest.platform import Platform
from fastest.services import events

log = logging.getLogger("fastest.conversations")


async def turn_completed(platform: Platform, conversation_id: str, turn_id: str, context: Mapping[str, Any]) -> None:
    """Record the finished turn as a project event. Never raises: the turn is done either way."""
    project_id, user_id = context.get("project_id"), context.get("user_id")
    if not project_id or not user_id:
        return
    try:
        await platform.db.batch(events.record(
            platform, project_id, user_id, "conversation.turn.completed", f"Conversation {conversation_id}: turn completed",
            {"conversation_id": conversation_id, "turn_id": turn_id, "workspace_id": context.get("workspace_id")},
            touch=False,
        ))
    except Exception:
        log.exception("conversation %s: could not record turn %s", conversation_id, turn_id)
