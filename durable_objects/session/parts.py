"""A conversation's messages as OpenCode's message parts (`Part` of `@opencode-ai/sdk`), whatever
engine answered them.

Messages OpenCode answered keep the parts OpenCode reported. The others (the builtin engine, an
OpenAI-compatible model, Anthropic, Workers AI) are told as OpenCode would tell them: a text part for
the text, a tool part per tool call with its input as an object and its state (`completed` with the
output, `error`, or `running` while its turn still runs), with times in milliseconds. Part ids are
derived from the message's id and the part's position, so they stay the same from one read to the
next.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable

# The argument a file tool's title names (OpenCode titles a tool part with what it worked on).
_TITLE_ARGUMENTS = ("path", "question")


def millis(iso: str | None) -> int:
    if not iso:
        return 0
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def part_id(message_id: str, index: int) -> str:
    return f"prt_{message_id.removeprefix('msg_')}{index:03d}"


def _text(session_id: str, message: dict[str, Any], index: int, at: int) -> dict[str, Any]:
    return {"id": part_id(message["id"], index), "sessionID": session_id, "messageID": message["id"], "type": "text",
            "text": message.get("content") or "", "time": {"start": at, "end": at}}


def _tool_state(call: dict[str, Any], result: dict[str, Any] | None, start: int, running: bool) -> dict[str, Any]:
    try:
        arguments = json.loads(call["function"].get("arguments") or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        return {"status": "error", "input": {}, "error": "The arguments are not a JSON object.", "time": {"start": start, "end": start}}
    if result is None:
        if running:
            return {"status": "running", "input": arguments, "time": {"start": start}}
        return {"status": "error", "input": arguments, "error": "The turn ended before this tool finished.", "time": {"start": start, "end": start}}
    end = max(start, millis(result.get("created_at")))
    output = str(result.get("content") or "")
    if not result.get("ok", not output.startswith("Error")):
        return {"status": "error", "input": arguments, "error": output, "time": {"start": start, "end": end}}
    title = next((str(arguments[name]) for name in _TITLE_ARGUMENTS if arguments.get(name)), call["function"]["name"])
    return {"status": "completed", "input": arguments, "output": output, "title": title, "metadata": {},
            "time": {"start": start, "end": end}}


def parts_by_message(messages: Iterable[dict[str, Any]], session_id: str, *, running_turn: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each message's parts, by the conversation's message id (tool results belong to the part of
    the call they answer, not to a message of their own)."""
    messages = list(messages)
    results = {m.get("tool_call_id"): m for m in messages if m.get("role") == "tool"}
    parts: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message.get("role") == "tool":
            continue
        if isinstance(message.get("parts"), list):  # as OpenCode reported them
            parts[message["id"]] = message["parts"]
            continue
        at = millis(message.get("created_at"))
        own: list[dict[str, Any]] = []
        if message.get("content") or message.get("role") == "user":
            own.append(_text(session_id, message, 0, at))
        for call in message.get("tool_calls") or ():
            running = running_turn is not None and message.get("turn_id") == running_turn
            own.append({"id": part_id(message["id"], len(own)), "sessionID": session_id, "messageID": message["id"],
                        "type": "tool", "callID": call["id"], "tool": call["function"]["name"],
                        "state": _tool_state(call, results.get(call["id"]), at, running)})
        parts[message["id"]] = own
    return parts


def question_request(request_id: str, session_id: str, question: str, options: Iterable[str]) -> dict[str, Any]:
    """An `ask_question` call as OpenCode's `QuestionRequest`: one question, its options as labels."""
    return {"id": request_id, "sessionID": session_id, "questions": [{
        "question": question, "header": question[:30],
        "options": [{"label": option, "description": ""} for option in options],
    }]}
