"""A test-made OpenAI-compatible model server on loopback: `POST /v1/chat/completions` with
`stream: true` answers in server-sent events, scripted by the last message:

- a user prompt containing "edit" → a `write_file` tool call (hello.txt), arguments split over chunks;
- "ask" → an `ask_question` tool call;
- "slow <n>" → n text deltas, 25 ms apart ("w0 w1 …");
- "huge" → 1.2 MB of text in 20 deltas;
- anything else → "Hello" " world";
- after a tool result → "Done: <result>".

It records each request (path, authorization header, body) for the tests to inspect.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable

from tests.loopback import LoopbackServer, QuietHandler


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": "test-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


def _tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> list[bytes]:
    text = json.dumps(arguments)
    half = len(text) // 2
    return [
        _chunk({"tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": text[:half]}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": text[half:]}}]}),
        _chunk({}, "tool_calls"),
    ]


def script(messages: list[dict[str, Any]]) -> tuple[list[bytes], float]:
    last = messages[-1]
    if last["role"] == "tool":
        return [_chunk({"content": "Done: "}), _chunk({"content": last["content"]}), _chunk({}, "stop")], 0.0
    prompt = last["content"]
    if "edit" in prompt:
        return [_chunk({"role": "assistant", "content": "Editing."}),
                *_tool_call("call_edit", "write_file", {"path": "hello.txt", "content": "Hello from the model\n"})], 0.0
    if "ask" in prompt:
        return _tool_call("call_ask", "ask_question", {"question": "Which colour?", "options": ["red", "blue"]}), 0.0
    if "huge" in prompt:  # 1.2 MB of text: more than one stored message may hold
        return [*(_chunk({"content": "x" * 60_000}) for _ in range(20)), _chunk({}, "stop")], 0.0
    if match := re.search(r"slow (\d+)", prompt):
        return [*(_chunk({"content": f"w{i} "}) for i in range(int(match.group(1)))), _chunk({}, "stop")], 0.025
    return [_chunk({"content": "Hello"}), _chunk({"content": " world"}), _chunk({}, "stop")], 0.0


def _script_of_request(body: dict[str, Any]) -> tuple[list[bytes], float]:
    return script(body["messages"])


class ModelServer(LoopbackServer):
    """The server; `respond` scripts the answer from the whole request body (default: `script`,
    by the last message)."""

    def __init__(self, respond: Callable[[dict[str, Any]], tuple[list[bytes], float]] = _script_of_request) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.body())
                owner.requests.append({"path": self.path, "authorization": self.headers.get("authorization"), "body": body})
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                chunks, pause = respond(body)
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if pause:
                            time.sleep(pause)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except OSError:  # the client went away mid-answer (an aborted turn)
                    pass

        super().__init__(Handler)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"
