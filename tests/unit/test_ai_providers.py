"""The pure parts of the model providers: SSE parsing, Anthropic translation, builtin commands."""

from __future__ import annotations

import asyncio
import json

from fastest.config import Settings
from fastest.platform.ai import configured_model, model_for
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
    assert configured_model(Settings(), None) is None  # nothing configured: platform.ai stays None
    assert model_for(Settings(ai_provider="openai", ai_model="m"), None).provider == "builtin"  # no HTTP client
    assert model_for(Settings(ai_provider="openai"), object()).provider == "builtin"  # no model named
    assert model_for(Settings(ai_provider="openai", ai_model="m"), object()).provider == "openai"
    assert model_for(Settings(ai_provider="anthropic", ai_model="m"), object()).provider == "anthropic"
    assert "sk-secret" not in repr(Settings(ai_api_key="sk-secret"))
