"""The session object reads what a page returns, not its whole log: the messages page and the
timeline list backwards (storage `reverse`) from where they end. Counted on the real local storage."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from durable_objects.session import messages as session_messages
from durable_objects.session import turns as session_turns
from durable_objects.conversation_session import ConversationSession
from fastest.platform.local.sessions import LocalSessionStorage
from fastest.ports import SessionRequest


class CountingStorage:
    """Local session storage that counts the entries it hands out."""

    def __init__(self, inner: LocalSessionStorage) -> None:
        self.inner = inner
        self.entries_read = 0

    async def get(self, key: str) -> Any:
        value = await self.inner.get(key)
        self.entries_read += value is not None
        return value

    async def put(self, key: str, value: Any) -> None:
        await self.inner.put(key, value)

    async def delete(self, key: str) -> bool:
        return await self.inner.delete(key)

    async def list(self, **options: Any) -> dict[str, Any]:
        found = await self.inner.list(**options)
        self.entries_read += len(found)
        return found


def test_pages_read_only_what_they_return(tmp_path, platform, clock, monkeypatch):
    storage = CountingStorage(LocalSessionStorage(tmp_path / "session.sqlite"))
    core = ConversationSession("cnv_reads", storage, platform=platform)

    async def get(path: str) -> dict[str, Any]:
        response = await core.fetch(SessionRequest("GET", path))
        assert response.status == 200, response.body
        return json.loads(response.body)

    async def scenario() -> None:
        await core.fetch(SessionRequest("PUT", "/context", json.dumps({"conversation_id": "cnv_reads", "user_id": "usr_x"}).encode()))
        for n in range(300):
            await core._add_message({"role": "user", "content": f"m{n}"})
            await core.emit("message.delta" if n % 3 else "note", {"n": n})
            clock.advance(1)
        all_messages = await core.messages()
        before = all_messages[200]["created_at"]  # the 201st message's time

        storage.entries_read = 0
        page = await get(f"/messages?limit=5&before={before}")
        assert [m["content"] for m in page["messages"]] == ["m195", "m196", "m197", "m198", "m199"] and page["has_more"]
        assert storage.entries_read <= 6 + 2 + 2 * 9 + 4  # the page (+1), the ends, a binary search, the context

        storage.entries_read = 0
        assert [m["content"] for m in (await get("/messages?limit=2"))["messages"]] == ["m298", "m299"]
        assert storage.entries_read <= 3 + 4

        monkeypatch.setattr(session_messages, "TIMELINE_LIMIT", 10)
        storage.entries_read = 0
        timeline = (await get("/timeline"))["timeline"]
        assert [e["data"]["n"] for e in timeline] == list(range(270, 300, 3))
        assert storage.entries_read <= 30 + 4  # the last ten notes and the deltas between them

    try:
        asyncio.run(scenario())
    finally:
        storage.inner.close()


def test_the_model_sees_the_newest_messages_within_its_budget_from_a_prompt_on(tmp_path, platform, clock, monkeypatch):
    storage = CountingStorage(LocalSessionStorage(tmp_path / "session.sqlite"))
    core = ConversationSession("cnv_history", storage, platform=platform)
    monkeypatch.setattr(session_turns, "HISTORY_MAX_CHARS", 1000)

    async def scenario() -> None:
        await core.fetch(SessionRequest("PUT", "/context", json.dumps({"conversation_id": "cnv_history", "user_id": "usr_x"}).encode()))
        for n in range(200):  # turns of a prompt, a tool call, its result and an answer: 100 characters each
            call = {"id": f"call_{n}", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
            await core._add_message({"role": "user", "content": f"prompt {n}".ljust(100)})
            await core._add_message({"role": "assistant", "content": "", "tool_calls": [call]})
            await core._add_message({"role": "tool", "content": "r" * 100, "tool_call_id": f"call_{n}"})
            await core._add_message({"role": "assistant", "content": f"answer {n}".ljust(100)})
        storage.entries_read = 0
        history = await core._history()
        assert history[0]["role"] == "system" and history[1]["role"] == "user"  # never a dangling tool result
        assert history[-1]["content"].startswith("answer 199")
        shown = sum(len(m["content"]) + len(json.dumps(m.get("tool_calls", []))) for m in history[1:])
        assert shown <= 1000 and history[1]["content"].startswith("prompt 198")  # the last two turns (~440 each)
        assert storage.entries_read <= 2 * session_turns.HISTORY_PAGE + 4

        await core._add_message({"role": "user", "content": "x" * 5000})  # a prompt over the budget alone
        history = await core._history()
        assert [m["content"] for m in history[1:]] == ["x" * 5000]

    try:
        asyncio.run(scenario())
    finally:
        storage.inner.close()
