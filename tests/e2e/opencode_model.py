"""A test-made OpenAI-compatible model server on loopback for a real OpenCode: `POST
/v1/chat/completions` with `stream: true`, scripted by the conversation so far (OpenCode sends the
whole history, its own tools among the request's `tools`):

- "note" in the latest prompt → OpenCode's `write` tool for `notes.txt`, then its `question` tool,
  then a text that quotes the answer;
- "run" → OpenCode's `bash` tool (which asks for permission first), then "Ran.";
- "slow" → 80 text deltas, 100 ms apart (a turn long enough to abort, or to kill OpenCode in);
- anything else → "Hello again";
- a request without tools (OpenCode naming its session) → a title.

It records each request (path, authorization header, body) for the tests to inspect.
"""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.model_server import ModelServer, _chunk

NOTE = "Hello from OpenCode\n"


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return str(content or "")


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> list[bytes]:
    return [_chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                                          "function": {"name": name, "arguments": json.dumps(arguments)}}]}),
            _chunk({}, "tool_calls")]


def script(body: dict[str, Any]) -> tuple[list[bytes], float]:
    messages = body["messages"]
    if not body.get("tools"):
        return [_chunk({"role": "assistant", "content": "A title"}), _chunk({}, "stop")], 0.0
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    prompt = _text_of(messages[last_user])
    results = [m for m in messages[last_user:] if m["role"] == "tool"]
    if "note" in prompt:
        if not results:
            return [_chunk({"role": "assistant", "content": "Writing the note."}),
                    *_call("call_write", "write", {"filePath": "notes.txt", "content": NOTE})], 0.0
        if len(results) == 1:
            return _call("call_ask", "question", {"questions": [{
                "question": "Which colour?", "header": "Colour",
                "options": [{"label": "red", "description": "Warm"}, {"label": "blue", "description": "Cool"}]}]}), 0.0
        return [_chunk({"role": "assistant", "content": "Done: "}), _chunk({"content": _text_of(results[-1])[:200]}),
                _chunk({}, "stop")], 0.0
    if "run" in prompt:
        if not results:
            return _call("call_bash", "bash", {"command": "echo ran > ran.txt", "description": "Write ran.txt"}), 0.0
        return [_chunk({"role": "assistant", "content": "Ran."}), _chunk({}, "stop")], 0.0
    if "slow" in prompt:
        return [*(_chunk({"role": "assistant", "content": f"w{i} "}) for i in range(80)), _chunk({}, "stop")], 0.1
    return [_chunk({"role": "assistant", "content": "Hello again"}), _chunk({}, "stop")], 0.0


class OpenCodeModel(ModelServer):
    def __init__(self) -> None:
        super().__init__(script)
