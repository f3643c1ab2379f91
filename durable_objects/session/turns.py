"""The agent turn: a prompt starts it, the model streams rounds in the background (`message.delta`
events), its tool calls run between rounds, and it ends with `turn.completed` or `turn.failed`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from durable_objects.session.state import (
    DELTAS_KEY,
    EVENT_PREFIX,
    MESSAGE_PREFIX,
    RUNNING_TURN_KEY,
    SessionPart,
    _Refusal,
    log,
)
from durable_objects.session.tools import TOOLS
from fastest.errors import AIRateLimited
from fastest.ports import AIError, AIModel

# How much of the conversation the model is shown each round, newest first, in characters of
# content and tool calls (~100k tokens): a long conversation neither outgrows the model's context
# window nor makes each turn read the whole message log.
HISTORY_MAX_CHARS = 400_000
HISTORY_PAGE = 50
# One model message (its text plus its tool calls' arguments, e.g. a written file) is one storage
# entry; Durable Object entries hold at most 2 MB.
MESSAGE_MAX_BYTES = 1024 * 1024

SYSTEM_PROMPT = (
    "You are a coding agent working on the files of the user's workspace. Use the tools to list, "
    "read, write and delete files (paths are relative to the workspace root) and ask_question when "
    "you need the user to decide. Keep answers short; say what you changed."
)


class _TurnFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class HeadlessTurn:
    """How a turn no client watches ended: `status` is "completed" (with the model's last words
    in `answer`), "failed", "rate_limited" (both with an `error` of code and message) or
    "model_not_configured" (the builtin engine cannot act on its own)."""

    status: str
    error: dict[str, str] | None = None
    answer: str = ""


class TurnRunner(SessionPart):
    """The agent turn (a part of `ConversationSession`)."""

    # ----------------------------------------------------------------------------------------------
    # The agent turn
    # ----------------------------------------------------------------------------------------------

    async def _model(self, context: dict[str, Any]) -> AIModel:
        from fastest.services.ai import models

        return await models.for_user(self._require_platform(), context["user_id"])

    async def _spend(self, context: dict[str, Any], model: AIModel) -> None:
        """One unit of the AI budget per model call (the builtin engine is not a model: free)."""
        from fastest.services.ai import ai_budget, models

        if not models.is_model(model) and model.provider != "opencode":  # an OpenCode turn is model work
            return

        await ai_budget.spend(self._require_platform(), context["user_id"])

    async def prompt(self, prompt: Any, context: dict[str, Any]) -> dict[str, Any]:
        """Start a turn: record the user's message and answer it in the background. 409 while a
        turn runs; 413 for an oversized prompt; 429 `ai_rate_limited` when the budget is spent."""
        platform = self._require_platform()
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Refusal(422, "validation_failed", "A prompt is a non-empty string.", fields={"prompt": "required"})
        limit = platform.settings.conversation_max_prompt_bytes
        if len(prompt.encode("utf-8")) > limit:
            raise _Refusal(413, "payload_too_large", f"A prompt is at most {limit} bytes.")
        if self._busy:
            raise _Refusal(409, "turn_in_progress", "A turn is already running in this conversation; wait for turn.completed.")
        self._busy = True  # taken before the first await: a concurrent prompt sees it
        try:
            model = await self._model(context)
            await self._spend(context, model)
            first = not await self.storage.list(prefix=MESSAGE_PREFIX, limit=1)
            await self._drop_previous_deltas()
            message = await self._add_message({"role": "user", "content": prompt})
            turn_id = self._new_id("trn")
            await self.emit("message.created", {"message": message})
            await self.emit("turn.started", {"turn_id": turn_id, "provider": model.provider, "model": model.model})
            await self.storage.put(RUNNING_TURN_KEY, turn_id)
            if first:
                from fastest.services import conversations

                await conversations.auto_title(platform, self.name, prompt)
        except BaseException:
            self._busy = False
            raise
        if model.provider == "opencode":  # OpenCode runs the agent loop itself
            self._turn_task = self._spawn(self._run_opencode_turn(turn_id, model, context, prompt, message))
        else:
            self._turn_task = self._spawn(self._run_turn(turn_id, model, context))
        return {"message": message, "turn_id": turn_id}

    async def run_headless_turn(self, prompt: str, context: dict[str, Any]) -> HeadlessTurn:
        """Run one turn to its end with no one watching (an action-item run): `ask_question`
        answers itself and no integration webhook announces it."""
        from fastest.services.ai import models

        model = await self._model(context)
        if not models.is_model(model):
            return HeadlessTurn("model_not_configured")
        try:
            await self._spend(context, model)
        except AIRateLimited as error:
            return HeadlessTurn("rate_limited", {"code": error.code, "message": error.message})
        self.headless = True
        self._busy = True
        turn_id = self._new_id("trn")
        await self._add_message({"role": "user", "content": prompt, "turn_id": turn_id})
        await self.emit("turn.started", {"turn_id": turn_id, "provider": model.provider, "model": model.model})
        await self._run_turn(turn_id, model, context)
        ended = await self.storage.list(prefix=EVENT_PREFIX, reverse=True, limit=20)
        final = next((e for e in ended.values() if e["type"] in ("turn.completed", "turn.failed")
                      and e["data"].get("turn_id") == turn_id), None)
        if final is None or final["type"] == "turn.failed":
            error = (final or {}).get("data", {}).get("error") or {}
            return HeadlessTurn("failed", {"code": error.get("code", "turn_failed"),
                                           "message": error.get("message", "The agent's turn failed.")})
        answer = next((m.get("content") or "" for m in reversed(await self.messages())
                       if m["role"] == "assistant" and (m.get("content") or "").strip()), "")
        return HeadlessTurn("completed", answer=answer)

    async def _drop_previous_deltas(self) -> None:
        """Forget the streamed chunks of earlier turns (their messages keep the text)."""
        for event_id in await self.storage.get(DELTAS_KEY) or []:
            await self.storage.delete(f"{EVENT_PREFIX}{event_id:012d}")
        await self.storage.delete(DELTAS_KEY)

    async def _remember_deltas(self, event_ids: list[int]) -> None:
        if event_ids:
            await self.storage.put(DELTAS_KEY, [*(await self.storage.get(DELTAS_KEY) or []), *event_ids])

    async def _recent_messages(self) -> list[dict[str, Any]]:
        """The newest messages within `HISTORY_MAX_CHARS`, oldest first, read backwards page by
        page. Always back to the latest user message (the prompt being answered); when older ones
        are left out, it starts at a user message, so no tool result is shown without its call."""
        newest_first: list[dict[str, Any]] = []
        size = 0
        seen_prompt = truncated = False
        end: str | None = None
        while not truncated:
            page = await self.storage.list(prefix=MESSAGE_PREFIX, end=end, reverse=True, limit=HISTORY_PAGE)
            for message in page.values():
                size += len(message.get("content") or "") + len(json.dumps(message.get("tool_calls") or []))
                if size > HISTORY_MAX_CHARS and seen_prompt:
                    truncated = True
                    break
                newest_first.append(message)
                seen_prompt = seen_prompt or message["role"] == "user"
            if len(page) < HISTORY_PAGE:  # the start of the log
                break
            end = next(reversed(page))  # the oldest key read: the next page ends before it
        while truncated and newest_first[-1]["role"] != "user":
            newest_first.pop()
        return newest_first[::-1]

    async def _history(self) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
        for message in await self._recent_messages():
            item = {"role": message["role"], "content": message.get("content") or ""}
            if message.get("tool_calls"):
                item["tool_calls"] = message["tool_calls"]
            if message["role"] == "tool":
                item["tool_call_id"] = message.get("tool_call_id", "")
            history.append(item)
        return history

    async def _run_turn(self, turn_id: str, model: AIModel, context: dict[str, Any]) -> None:
        try:
            rounds = self._require_platform().settings.conversation_max_tool_rounds
            for round_number in range(rounds):
                if round_number:
                    await self._spend(context, model)
                calls = await self._model_round(turn_id, model)
                if not calls:
                    break
                for call in calls:
                    await self._tool(turn_id, call, context)
            else:
                await self.emit("turn.failed", {"turn_id": turn_id, "error": {
                    "code": "tool_rounds_exceeded", "message": f"The model kept calling tools after {rounds} rounds."}})
                return
            await self.emit("turn.completed", {"turn_id": turn_id})
            if not getattr(self, "headless", False):  # a chat's turn, not an action-item run's
                from fastest.services.conversations.turn_events import (
                    turn_completed,  # integration webhooks
                )

                await turn_completed(self._require_platform(), self.name, turn_id, context)
        except _TurnFailed as failure:
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": failure.code, "message": str(failure)}})
        except AIRateLimited as error:
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": error.code, "message": error.message}, **error.extra})
        except AIError as error:
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": "ai_unavailable", "message": str(error)}})
        except asyncio.CancelledError:
            if not self._cancelled:  # the server is stopping: the next life reports the turn
                raise
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": "cancelled", "message": "The turn was cancelled."}})
        except Exception:
            log.exception("conversation %s: turn %s failed", self.name, turn_id)
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": "internal", "message": "The turn failed."}})
        finally:
            self._busy = False
            self._cancelled = False
            self._turn_task = None
            with contextlib.suppress(Exception):
                await self.storage.delete(RUNNING_TURN_KEY)

    async def _model_round(self, turn_id: str, model: AIModel) -> list[dict[str, Any]]:
        """One model call: stream its text as `message.delta` events, store the message, return its
        tool calls."""
        message_id = self._new_id("msg")
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        done: dict[str, Any] = {}
        size = 0
        delta_ids: list[int] = []
        stream = model.stream(await self._history(), tools=TOOLS)
        try:
            async for event in stream:
                if event["type"] == "delta" and event["content"]:
                    text.append(event["content"])
                    size += len(event["content"].encode("utf-8"))
                    emitted = await self.emit("message.delta", {"message_id": message_id, "turn_id": turn_id, "delta": event["content"]})
                    delta_ids.append(emitted["id"])
                elif event["type"] == "tool_call":
                    calls.append({"id": event["id"], "type": "function",
                                  "function": {"name": event["name"], "arguments": event["arguments"]}})
                    size += len(str(event["arguments"]).encode("utf-8"))
                elif event["type"] == "done":
                    done = dict(event)
                if size > MESSAGE_MAX_BYTES:
                    # A stored message is one storage entry (2 MB on Durable Objects): stop reading.
                    raise _TurnFailed("message_too_large", f"The model's message passed {MESSAGE_MAX_BYTES} bytes; it was not kept.")
        finally:
            await self._remember_deltas(delta_ids)
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        message = {"id": message_id, "role": "assistant", "content": "".join(text), "turn_id": turn_id,
                   "provider": done.get("provider", model.provider), "model": done.get("model", model.model)}
        if calls:
            message["tool_calls"] = calls
        stored = await self._add_message(message)
        await self.emit("message.completed", {"message": stored})
        return calls
