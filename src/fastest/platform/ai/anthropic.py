"""Anthropic's Messages API (`POST <base>/v1/messages`, `stream: true`), behind the same port.

The conversation speaks OpenAI's chat format; this module translates: system messages become
`system`, an assistant's `tool_calls` become `tool_use` blocks, `tool` messages become `tool_result`
blocks of a user turn, and OpenAI function tools become Anthropic tools (`input_schema`).
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Mapping, Sequence

from fastest.platform.ai.sse import parse_events
from fastest.ports import AIError, HttpClient

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


def to_anthropic(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []

    def append(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for message in messages:
        role, content = message.get("role"), message.get("content") or ""
        if role == "system":
            system.append(str(content))
        elif role == "tool":
            append("user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""), "content": str(content)}])
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": str(content)}] if content else []
            for call in message.get("tool_calls") or ():
                try:
                    arguments = json.loads(call["function"].get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                blocks.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": arguments})
            append("assistant", blocks or [{"type": "text", "text": ""}])
        else:
            append("user", [{"type": "text", "text": str(content)}])
    return "\n\n".join(system), out


def to_anthropic_tools(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {"name": t["function"]["name"], "description": t["function"].get("description", ""),
         "input_schema": t["function"].get("parameters") or {"type": "object"}}
        for t in tools or ()
    ]


class AnthropicModel:
    provider = "anthropic"

    def __init__(self, http: HttpClient, *, base_url: str, model: str, api_key: str | None, timeout: float = 120.0) -> None:
        self._http = http
        self._url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/v1/messages"
        self.model = model
        self._api_key = api_key
        self._timeout = timeout

    def _request(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None, stream: bool, options: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        system, converted = to_anthropic(messages)
        body: dict[str, Any] = {
            "model": self.model, "messages": converted, "stream": stream,
            "max_tokens": int(options.get("max_tokens", DEFAULT_MAX_TOKENS)),
        }
        if system:
            body["system"] = system
        if tools:
            body["tools"] = to_anthropic_tools(tools)
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers, json.dumps(body).encode()

    async def complete(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> Mapping[str, Any]:
        content: list[str] = []
        calls: list[dict[str, Any]] = []
        model = self.model
        async for event in self.stream(messages, **options):
            if event["type"] == "delta":
                content.append(event["content"])
            elif event["type"] == "tool_call":
                calls.append({"id": event["id"], "type": "function", "function": {"name": event["name"], "arguments": event["arguments"]}})
            elif event["type"] == "done":
                model = event["model"]
        return {"content": "".join(content), "tool_calls": calls, "model": model, "provider": self.provider}

    async def stream(
        self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None = None, **options: Any
    ) -> AsyncIterator[Mapping[str, Any]]:
        headers, body = self._request(messages, tools, True, options)
        try:
            response = await self._http.stream("POST", self._url, headers=headers, body=body, timeout=self._timeout)
        except Exception as exc:
            raise AIError("Anthropic's API could not be reached.") from exc
        blocks: dict[int, dict[str, str]] = {}
        model, finish = self.model, None
        try:
            if response.status != 200:
                raise AIError(f"Anthropic's API answered HTTP {response.status}.")
            async for event in parse_events(response.chunks):
                try:
                    data = json.loads(event.data)
                except ValueError as exc:
                    raise AIError("Anthropic's API sent a malformed event.") from exc
                kind = data.get("type")
                if kind == "error":
                    raise AIError("Anthropic's API reported an error.")
                if kind == "message_start":
                    model = (data.get("message") or {}).get("model") or model
                elif kind == "content_block_start":
                    block = data.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        blocks[int(data.get("index", 0))] = {"id": block.get("id", ""), "name": block.get("name", ""), "arguments": ""}
                elif kind == "content_block_delta":
                    delta = data.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield {"type": "delta", "content": delta["text"]}
                    elif delta.get("type") == "input_json_delta":
                        slot = blocks.get(int(data.get("index", 0)))
                        if slot is not None:
                            slot["arguments"] += delta.get("partial_json") or ""
                elif kind == "message_delta":
                    finish = (data.get("delta") or {}).get("stop_reason") or finish
                elif kind == "message_stop":
                    break
        except AIError:
            raise
        except Exception as exc:
            raise AIError("The connection to Anthropic's API broke.") from exc
        finally:
            await response.close()
        for index in sorted(blocks):
            block = blocks[index]
            yield {"type": "tool_call", "id": block["id"], "name": block["name"], "arguments": block["arguments"] or "{}"}
        yield {"type": "done", "model": model, "provider": self.provider, "finish_reason": finish}

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise AIError("Anthropic offers no embeddings.")
