"""The pure parts of the model providers: SSE parsing, Anthropic translation, builtin commands."""

from __future__ import annotations

import asyncio
import json

from fastest.config import Settings
from fastest.platform.ai import model_for
from fastest.platform.ai.anthropic import to_anthropic, to_anthropic_tools
from fastest.platform.ai.builtin import BuiltinEngine, command_call
from fastest.platform.ai.sse import ServerSentEvent, parse_events


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


def collect(aiter):
    async def run():
        return [item async for item in aiter]

    return asyncio.run(run())


def test_sse_events_split_anywhere_across_chunks():
    stream = b'event: a\r\ndata: {"x":\r\ndata: 1}\r\n\r\n: comment\n\ndata: two\n\ndata: [DONE]\n\n'
    expected = [ServerSentEvent("a", '{"x":\n1}'), ServerSentEvent("message", "two"), ServerSentEvent("message", "[DONE]")]
    for size in (1, 2, 3, 7, len(stream)):
        parts = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert collect(parse_events(_chunks(*parts))) == expected


def test_anthropic_translation_of_tool_use():
    system, messages = to_anthropic([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "edit"},
        {"role": "assistant", "content": "ok", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "write_file", "arguments": '{"path": "a"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ])
    assert system == "be brief"
    assert messages == [
        {"role": "user", "content": [{"type": "text", "text": "edit"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}, {"type": "tool_use", "id": "c1", "name": "write_file", "input": {"path": "a"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "done"}]},
    ]
    tools = to_anthropic_tools([{"type": "function", "function": {"name": "t", "description": "d", "parameters": {"type": "object"}}}])
    assert tools == [{"name": "t", "description": "d", "input_schema": {"type": "object"}}]


def test_builtin_engine_commands_and_refusal_to_pretend():
    assert command_call("/write src/a.py\nx = 1\n") == ("write_file", {"path": "src/a.py", "content": "x = 1\n"})
    assert command_call("/ls") == ("list_files", {"path": ""})
    assert command_call("/cat README.md") == ("read_file", {"path": "README.md"})
    assert command_call("write me a poem") is None
    events = collect(BuiltinEngine().stream([{"role": "user", "content": "write me a poem"}]))
    assert "No AI model is configured" in events[0]["content"] and events[-1]["provider"] == "builtin"
    call = collect(BuiltinEngine().stream([{"role": "user", "content": "/rm a.txt"}]))[0]
    assert call["type"] == "tool_call" and json.loads(call["arguments"]) == {"path": "a.txt"}
    answer = asyncio.run(BuiltinEngine().complete([{"role": "user", "content": "merge this"}]))
    assert answer["content"] == "" and answer["configured"] is False and answer["model"] == "builtin"


def test_provider_choice():
    assert model_for(Settings(), object()).provider == "builtin"  # nothing configured
    assert model_for(Settings(ai_provider="openai", ai_model="m"), None).provider == "builtin"  # no HTTP client
    assert model_for(Settings(ai_provider="openai"), object()).provider == "builtin"  # no model named
    assert model_for(Settings(ai_provider="openai", ai_model="m"), object()).provider == "openai"
    assert model_for(Settings(ai_provider="anthropic", ai_model="m"), object()).provider == "anthropic"
    assert "sk-secret" not in repr(Settings(ai_api_key="sk-secret"))


ANTHROPIC_STREAM = [
    ("message_start", {"type": "message_start", "message": {"model": "claude-test"}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Writing"}}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "tu_1", "name": "write_file", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"path": "a.t'}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": 'xt", "content": "hi"}'}}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
    ("message_stop", {"type": "message_stop"}),
]


def test_anthropic_stream_from_a_loopback_server():
    """The Messages API's event stream (as documented) becomes the port's events."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from fastest.platform.ai.anthropic import AnthropicModel
    from fastest.platform.local.http import HttpxClient

    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            seen["headers"] = dict(self.headers)
            seen["body"] = json.loads(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            for name, data in ANTHROPIC_STREAM:
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = AnthropicModel(HttpxClient(), base_url=f"http://127.0.0.1:{server.server_address[1]}", model="claude-test", api_key="k")
        events = collect(model.stream([{"role": "system", "content": "s"}, {"role": "user", "content": "go"}],
                                      tools=[{"type": "function", "function": {"name": "write_file", "parameters": {"type": "object"}}}]))
    finally:
        server.shutdown()
        server.server_close()
    assert events == [
        {"type": "delta", "content": "Writing"},
        {"type": "tool_call", "id": "tu_1", "name": "write_file", "arguments": '{"path": "a.txt", "content": "hi"}'},
        {"type": "done", "model": "claude-test", "provider": "anthropic", "finish_reason": "tool_use"},
    ]
    assert seen["headers"]["x-api-key"] == "k" and seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["body"]["system"] == "s" and seen["body"]["tools"][0]["input_schema"] == {"type": "object"}
