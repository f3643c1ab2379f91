"""The `AIModel` (chat) and `EmbeddingModel` ports over the Workers AI binding (`env.AI.run`).

Thin on purpose: one non-streamed call per round (`run` with `messages` and `tools`), whose answer
(`response`, `tool_calls`) is replayed as port events, so a conversation works the same on the
binding as on a streaming HTTP provider, only in larger steps.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Mapping, Sequence

from fastest.platform.cloudflare.interop import from_js
from fastest.ports import AIError


def _js_object(mapping: dict[str, Any]) -> Any:
    from js import Object  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    return to_js(mapping, dict_converter=Object.fromEntries)


class WorkersAIModel:
    provider = "workers-ai"

    def __init__(self, binding: Any, model: str) -> None:
        self._binding = binding
        self.model = model

    async def _run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        try:
            result = from_js(await self._binding.run(self.model, _js_object(inputs)))
        except Exception as exc:
            raise AIError("Workers AI failed to answer.") from exc
        return result if isinstance(result, dict) else {"response": str(result or "")}

    async def complete(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> Mapping[str, Any]:
        inputs: dict[str, Any] = {"messages": [dict(m) for m in messages]}
        if options.get("tools"):
            inputs["tools"] = list(options["tools"])
        for name in ("response_format", "max_tokens", "temperature"):  # JSON mode; its max_tokens default is 256
            if options.get(name) is not None:
                inputs[name] = options[name]
        result = await self._run(inputs)
        return {"content": str(result.get("response") or ""), "tool_calls": result.get("tool_calls") or [],
                "model": self.model, "provider": self.provider}

    async def stream(
        self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None = None, **options: Any
    ) -> AsyncIterator[Mapping[str, Any]]:
        answer = await self.complete(messages, tools=tools)
        if answer["content"]:
            yield {"type": "delta", "content": answer["content"]}
        for index, call in enumerate(answer["tool_calls"]):
            function = call.get("function") or call  # both shapes occur: {name, arguments} and OpenAI's
            arguments = function.get("arguments") or {}
            yield {"type": "tool_call", "id": call.get("id") or f"call_{index}", "name": function.get("name", ""),
                   "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}
        yield {"type": "done", "model": self.model, "provider": self.provider, "finish_reason": "stop"}

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        result = await self._run({"text": list(texts)})
        return [list(vector) for vector in result.get("data") or []]
