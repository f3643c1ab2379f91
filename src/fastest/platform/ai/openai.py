"""An OpenAI-compatible chat completions endpoint: OpenAI itself, or a local llama.cpp, Ollama or
vLLM server (`<base_url>/chat/completions`, bearer key optional). Streams with `stream: true`."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Mapping, Sequence

from fastest.platform.ai.sse import parse_events
from fastest.ports import AIError, HttpClient

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAICompatibleModel:
    provider = "openai"

    def __init__(self, http: HttpClient, *, base_url: str, model: str, api_key: str | None, timeout: float = 120.0) -> None:
        self._http = http
        self._url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self._timeout = timeout

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def _body(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None, stream: bool, options: Mapping[str, Any]) -> bytes:
        body: dict[str, Any] = {"model": self.model, "messages": list(messages), "stream": stream}
        if tools:
            body["tools"] = list(tools)
        for name in ("temperature", "max_tokens", "response_format"):
            if name in options:
                body[name] = options[name]
        return json.dumps(body).encode()

    async def complete(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> Mapping[str, Any]:
        tools = options.pop("tools", None)
        try:
            response = await self._http.request(
                "POST", self._url, headers=self._headers(), body=self._body(messages, tools, False, options), timeout=self._timeout
            )
        except Exception as exc:  # transport errors of whichever client
            raise AIError(f"The model server at {self._url} could not be reached.") from exc
        if response.status != 200:
            raise AIError(f"The model server answered HTTP {response.status}.")
        try:
            answer = json.loads(response.body)
            message = answer["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise AIError("The model server's answer was not a chat completion.") from exc
        return {
            "content": message.get("content") or "",
            "tool_calls": message.get("tool_calls") or [],
            "model": answer.get("model") or self.model,
            "provider": self.provider,
        }

    async def stream(
        self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None = None, **options: Any
    ) -> AsyncIterator[Mapping[str, Any]]:
        try:
            response = await self._http.stream(
                "POST", self._url, headers=self._headers(), body=self._body(messages, tools, True, options), timeout=self._timeout
            )
        except Exception as exc:
            raise AIError(f"The model server at {self._url} could not be reached.") from exc
        calls: dict[int, dict[str, str]] = {}
        model, finish = self.model, None
        try:
            if response.status != 200:
                raise AIError(f"The model server answered HTTP {response.status}.")
            async for event in parse_events(response.chunks):
                if event.data.strip() == "[DONE]":
                    break
                try:
                    chunk = json.loads(event.data)
                except ValueError as exc:
                    raise AIError("The model server sent a malformed event.") from exc
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise AIError("The model server reported an error.")
                model = chunk.get("model") or model
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        yield {"type": "delta", "content": delta["content"]}
                    for call in delta.get("tool_calls") or ():
                        slot = calls.setdefault(int(call.get("index", len(calls))), {"id": "", "name": "", "arguments": ""})
                        function = call.get("function") or {}
                        slot["id"] = call.get("id") or slot["id"]
                        slot["name"] += function.get("name") or ""
                        slot["arguments"] += function.get("arguments") or ""
                    finish = choice.get("finish_reason") or finish
        except AIError:
            raise
        except Exception as exc:
            raise AIError("The connection to the model server broke.") from exc
        finally:
            await response.close()
        for index in sorted(calls):
            call = calls[index]
            yield {"type": "tool_call", "id": call["id"] or f"call_{index}", "name": call["name"], "arguments": call["arguments"] or "{}"}
        yield {"type": "done", "model": model, "provider": self.provider, "finish_reason": finish}

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        url = self._url.rsplit("/chat/completions", 1)[0] + "/embeddings"
        response = await self._http.request(
            "POST", url, headers=self._headers(), body=json.dumps({"model": self.model, "input": list(texts)}).encode(), timeout=self._timeout
        )
        if response.status != 200:
            raise AIError(f"The model server answered HTTP {response.status}.")
        return [item["embedding"] for item in json.loads(response.body)["data"]]
