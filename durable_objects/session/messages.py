"""The messages (OpenAI chat format), their pages and their parts as OpenCode defines them, the
timeline, and clear."""

from __future__ import annotations

from typing import Any

from durable_objects.session.state import (
    EVENT_PREFIX,
    LAST_MESSAGE_KEY,
    MESSAGE_PREFIX,
    OPENCODE_SESSION_KEY,
    QUESTION_PREFIX,
    RUNNING_TURN_KEY,
    SessionPart,
    _message_key,
    _Refusal,
)

TIMELINE_LIMIT = 500
MESSAGES_PAGE_MAX = 100  # the most messages one page holds (`GET …/messages?limit=`)


class Messages(SessionPart):
    """The messages, the timeline and clear (a part of `ConversationSession`)."""

    # ----------------------------------------------------------------------------------------------
    # Messages
    # ----------------------------------------------------------------------------------------------

    async def _add_message(self, message: dict[str, Any]) -> dict[str, Any]:
        seq = int(await self.storage.get(LAST_MESSAGE_KEY) or 0) + 1
        await self.storage.put(LAST_MESSAGE_KEY, seq)
        message = {"id": message.get("id") or self._new_id("msg"), "seq": seq, "created_at": self._now(), **message}
        await self.storage.put(_message_key(seq), message)
        return message

    async def messages(self) -> list[dict[str, Any]]:
        return list((await self.storage.list(prefix=MESSAGE_PREFIX)).values())

    async def _messages_page(self, query: dict[str, str]) -> dict[str, Any]:
        """The last `limit` messages created before `before` (all when absent), oldest first: read
        backwards from where `before` falls, `limit` + 1 of them (the extra one says `has_more`)."""
        raw_limit = query.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MESSAGES_PAGE_MAX:
            raise _Refusal(422, "validation_failed", f"limit is 1 to {MESSAGES_PAGE_MAX}.", fields={"limit": "out of range"})
        limit, before = int(raw_limit), query.get("before")
        end = await self._first_message_key_at(before) if before is not None else None
        page = await self.storage.list(prefix=MESSAGE_PREFIX, end=end, reverse=True, limit=limit + 1)
        messages = [m for m in page.values() if before is None or m["created_at"] < before]
        return {"messages": messages[:limit][::-1], "has_more": len(messages) > limit}

    async def _first_message_key_at(self, before: str) -> str | None:
        """The key of the first message created at or after `before` (None: there is none).

        Messages are stored by a sequence number and created in that order, so their times rise
        with it: a binary search over the sequence finds where `before` falls with a handful of
        single-entry reads, instead of reading every newer message. Each probe lists from its
        position (`start`, `limit=1`), so a gap in the sequence does no harm."""
        first = await self.storage.list(prefix=MESSAGE_PREFIX, limit=1)
        last = await self.storage.list(prefix=MESSAGE_PREFIX, reverse=True, limit=1)
        if not first or next(iter(last.values()))["created_at"] < before:
            return None
        low, high = next(iter(first.values()))["seq"], next(iter(last.values()))["seq"]
        while low < high:  # the answer lies in [low, high]; the message at `high` is at or after
            middle = (low + high) // 2
            probe = next(iter((await self.storage.list(prefix=MESSAGE_PREFIX, start=_message_key(middle), limit=1)).values()))
            if probe["created_at"] >= before:
                high = middle
            else:
                low = probe["seq"] + 1
        return _message_key(low)

    async def _opencode_messages(self) -> dict[str, Any]:
        """Each message's parts as OpenCode defines them (`durable_objects.session.parts`), by the
        conversation's message id; `sessionID` is the conversation's OpenCode session when OpenCode
        answers it, else the conversation's id."""
        from durable_objects.session.parts import parts_by_message

        session_id = await self.storage.get(OPENCODE_SESSION_KEY) or self.name
        running = await self.storage.get(RUNNING_TURN_KEY) if self._busy else None
        return {"messages": parts_by_message(await self.messages(), session_id, running_turn=running)}

    async def timeline(self) -> list[dict[str, Any]]:
        """The last `TIMELINE_LIMIT` events without the streamed deltas (each turn's text is in its
        completed message), oldest first: read backwards from the head, page by page, until that
        many are found (only the latest turn's deltas are still in the log to be skipped)."""
        kept: list[dict[str, Any]] = []
        end: str | None = None
        while len(kept) < TIMELINE_LIMIT:
            wanted = TIMELINE_LIMIT - len(kept)
            page = await self.storage.list(prefix=EVENT_PREFIX, end=end, reverse=True, limit=wanted)
            kept += [event for event in page.values() if event["type"] != "message.delta"]
            if len(page) < wanted:  # the start of the log
                break
            end = next(reversed(page))  # the oldest key read: the next page ends before it
        return kept[::-1]

    async def clear(self) -> dict[str, Any]:
        if self._busy:
            raise _Refusal(409, "turn_in_progress", "A turn is running; clear when it is done.")
        cleared = 0
        for prefix in (MESSAGE_PREFIX, QUESTION_PREFIX, EVENT_PREFIX):
            for key in await self.storage.list(prefix=prefix):
                await self.storage.delete(key)
                cleared += prefix == MESSAGE_PREFIX
        # OpenCode keeps its own history: the next turn starts a new session, remembering nothing.
        await self.storage.delete(OPENCODE_SESSION_KEY)
        await self.emit("conversation.cleared", {"messages_cleared": cleared})
        return {"success": True, "cleared": cleared}

    async def _project_info(self, context: dict[str, Any]) -> dict[str, Any]:
        from fastest.services.conversations.working_tree import OVERLAY_PREFIX

        overlay = await self.storage.list(prefix=OVERLAY_PREFIX)
        return {
            "project_id": context["project_id"], "workspace_id": context["workspace_id"],
            "manifest_hash": context["manifest_hash"], "changed_files": len(overlay),
        }
