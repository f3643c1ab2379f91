"""Pending questions (the `ask_question` tool): asked during a turn as OpenCode's `QuestionRequest`,
answered by the reply/reject routes or client frames with OpenCode's answers (one list of chosen
labels per question); a turn waiting on one resumes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from durable_objects.session.parts import question_request
from durable_objects.session.state import QUESTION_PREFIX, SessionPart, _Refusal

# A turn waits this long for a question's answer, then goes on without (the turn must not hold the
# conversation forever: no other prompt can run meanwhile).
QUESTION_TIMEOUT_SECONDS = 30 * 60


class Questions(SessionPart):
    """Pending questions (a part of `ConversationSession`)."""

    # ----------------------------------------------------------------------------------------------
    # Questions
    # ----------------------------------------------------------------------------------------------

    async def _ask(self, turn_id: str, call_id: str, arguments: dict[str, Any]) -> str:
        if getattr(self, "headless", False):  # an action-item run: no one to ask
            from durable_objects.runs import HEADLESS_ANSWER

            return HEADLESS_ANSWER
        question = str(arguments.get("question") or "").strip()
        if not question:
            return "Error: ask_question needs a question."
        options = [str(o) for o in arguments.get("options") or () if isinstance(o, (str, int, float))][:20]
        request_id = self._new_id("que")
        request = question_request(request_id, self.name, question, options)
        record = {"id": request_id, "turn_id": turn_id, "call_id": call_id, "status": "pending", "request": request,
                  "created_at": self._now()}
        await self.storage.put(QUESTION_PREFIX + request_id, record)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        try:
            await self.emit("question.asked", {"turn_id": turn_id, "request_id": request_id, "request": request})
            answers = await asyncio.wait_for(waiter, QUESTION_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            record.update(status="expired")
            await self.storage.put(QUESTION_PREFIX + request_id, record)
            await self.emit("question.expired", {"request_id": request_id})
            return "The user did not answer in time."
        finally:
            self._waiting.pop(request_id, None)
        if answers is None:
            return "The user declined to answer."
        return json.dumps({"answers": answers}, ensure_ascii=False)

    async def answer(self, request_id: str, answers: Any) -> None:
        """Reply to (answers: list of lists of strings) or reject (answers None) a pending question;
        a turn waiting on it resumes."""
        record = await self.storage.get(QUESTION_PREFIX + request_id) if request_id else None
        if record is None:
            raise _Refusal(404, "not_found", "No such question.")
        if record["status"] != "pending":
            raise _Refusal(409, "question_not_pending", f"This question was already {record['status']}.")
        if answers is not None and not (
            isinstance(answers, list) and all(isinstance(a, list) and all(isinstance(s, str) for s in a) for a in answers)
        ):
            raise _Refusal(422, "validation_failed", "answers is a list of lists of strings.", fields={"answers": "string[][]"})
        if record.get("engine") == "opencode":  # OpenCode waits for it: the answer goes there first
            await self._answer_opencode(record, answers)
            record = await self.storage.get(QUESTION_PREFIX + request_id)
            if record["status"] != "pending":  # OpenCode's own event recorded the answer meanwhile
                return
        record.update(status="answered" if answers is not None else "rejected", answers=answers, answered_at=self._now())
        await self.storage.put(QUESTION_PREFIX + request_id, record)
        await self.emit("question." + record["status"], {"request_id": request_id, "answers": answers})
        waiter = self._waiting.get(request_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(answers)
