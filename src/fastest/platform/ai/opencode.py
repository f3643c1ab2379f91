"""OpenCode as the conversation's agent: its server's HTTP API (`opencode serve`), spoken through the
`HttpClient` port, so the same client drives a server this machine runs (the local runtime) and one
the operator runs elsewhere (`FASTEST_OPENCODE_URL`, for the Worker).

`OpenCodeEngine` is what `model_for` builds for `FASTEST_AI_PROVIDER=opencode`: the marker the
conversation turn recognises (OpenCode runs its own agent loop, tools and questions), and, for the
features that only need a completion (summaries, merges), the OpenAI-compatible model behind it when
`FASTEST_AI_BASE_URL` names one. `opencode_config` is the configuration an OpenCode server started
here is given: the model, and everything that would reach the network switched off.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping, Sequence
from urllib.parse import quote, urlencode

from fastest.platform.ai.sse import parse_events
from fastest.ports import AIError, AIModel, HttpClient, OpenCodeServer

PROVIDER = "opencode"
# The provider id OpenCode's configuration gives an OpenAI-compatible server named by
# FASTEST_AI_BASE_URL (llama.cpp, Ollama, vLLM, a test's loopback model).
CUSTOM_PROVIDER = "fastest"
# A question the event stream may stay quiet for (a question waiting for its answer) is not a
# broken connection: the stream's per-chunk wait is this long.
EVENT_STREAM_IDLE_SECONDS = 45 * 60.0

# What OpenCode may do without asking (its `permission` configuration): edits stay in the
# conversation's working tree; shell commands and web fetches are asked as questions first.
DEFAULT_PERMISSION: dict[str, str] = {"edit": "allow", "bash": "ask", "webfetch": "ask", "external_directory": "deny"}


class OpenCodeError(AIError):
    """The OpenCode server could not be reached or refused; the message says which."""


@dataclass(frozen=True, slots=True)
class OpenCodeModel:
    """Which model OpenCode answers with, in its own `provider/model` form."""

    provider_id: str
    model_id: str

    @property
    def ref(self) -> dict[str, str]:
        return {"providerID": self.provider_id, "modelID": self.model_id}


def model_of(model: str, base_url: str) -> OpenCodeModel | None:
    """The model FASTEST_AI_MODEL names: served by FASTEST_AI_BASE_URL (an OpenAI-compatible server,
    OpenCode's provider `fastest`), else one of OpenCode's own providers as `provider/model`
    (`anthropic/claude-sonnet-4-5`); None when nothing is named (the server's own default)."""
    model = model.strip()
    if not model:
        return None
    if base_url.strip():
        return OpenCodeModel(CUSTOM_PROVIDER, model)
    provider, _, name = model.partition("/")
    return OpenCodeModel(provider, name) if name else None


# The environment variable the model's key reaches OpenCode in (its configuration names it as
# `{env:…}`, so the key is never written to disk).
KEY_VARIABLE = "FASTEST_MODEL_API_KEY"


def opencode_config(model: OpenCodeModel | None, *, base_url: str, api_key: str | None) -> dict[str, Any]:
    """The `opencode.json` of a server this runtime starts: the model (its key read from
    `KEY_VARIABLE`), questions for risky tools, and no update checks or sharing (nothing leaves)."""
    config: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "permission": dict(DEFAULT_PERMISSION),
    }
    if model is None:
        return config
    ref = f"{model.provider_id}/{model.model_id}"
    config["model"] = config["small_model"] = ref
    if model.provider_id == CUSTOM_PROVIDER:
        config["provider"] = {CUSTOM_PROVIDER: {
            "npm": "@ai-sdk/openai-compatible",
            "name": "Fastest's model server",
            "options": {"baseURL": base_url.rstrip("/"), **({"apiKey": "{env:" + KEY_VARIABLE + "}"} if api_key else {})},
            "models": {model.model_id: {"name": model.model_id, "tool_call": True}},
        }}
    elif api_key:
        config["provider"] = {model.provider_id: {"options": {"apiKey": "{env:" + KEY_VARIABLE + "}"}}}
    return config


# The user name OpenCode's server takes with OPENCODE_SERVER_PASSWORD (its default).
USERNAME = "opencode"


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


class OpenCodeClient:
    """OpenCode's HTTP API for one working directory (`?directory=` on every call)."""

    def __init__(self, http: HttpClient, server: OpenCodeServer, *, timeout: float = 30.0) -> None:
        self._http = http
        self.server = server
        self._timeout = timeout

    def _url(self, path: str) -> str:
        query = f"?{urlencode({'directory': self.server.directory})}" if self.server.directory else ""
        return f"{self.server.url.rstrip('/')}{path}{query}"

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"accept": "application/json", **self.server.headers}
        if body is not None:
            headers["content-type"] = "application/json"
        try:
            response = await self._http.request(method, self._url(path), headers=headers,
                                                body=json.dumps(body).encode() if body is not None else None,
                                                timeout=self._timeout)
        except Exception as exc:  # transport errors of whichever client
            raise OpenCodeError(f"The OpenCode server at {self.server.url} could not be reached.") from exc
        if response.status >= 400:
            raise OpenCodeError(f"The OpenCode server answered HTTP {response.status} to {method} {path}.")
        if not response.body:
            return None
        try:
            return json.loads(response.body)
        except ValueError as exc:
            raise OpenCodeError(f"The OpenCode server's answer to {method} {path} was not JSON.") from exc

    async def create_session(self, title: str) -> dict[str, Any]:
        return await self._call("POST", "/session", {"title": title})

    async def has_session(self, session_id: str) -> bool:
        try:
            await self._call("GET", f"/session/{quote(session_id)}")
        except OpenCodeError:
            return False
        return True

    async def prompt(self, session_id: str, text: str, model: OpenCodeModel | None) -> None:
        body: dict[str, Any] = {"parts": [{"type": "text", "text": text}]}
        if model is not None:
            body["model"] = model.ref
        await self._call("POST", f"/session/{quote(session_id)}/prompt_async", body)

    async def abort(self, session_id: str) -> None:
        await self._call("POST", f"/session/{quote(session_id)}/abort")

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        """`GET /session/:id/message`: every message as `{info, parts}`, oldest first."""
        return list(await self._call("GET", f"/session/{quote(session_id)}/message") or [])

    async def reply_question(self, request_id: str, answers: Sequence[Sequence[str]]) -> None:
        await self._call("POST", f"/question/{quote(request_id)}/reply", {"answers": [list(a) for a in answers]})

    async def reject_question(self, request_id: str) -> None:
        await self._call("POST", f"/question/{quote(request_id)}/reject")

    async def reply_permission(self, request_id: str, reply: str) -> None:
        await self._call("POST", f"/permission/{quote(request_id)}/reply", {"reply": reply})

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The server's event stream (`GET /event`), one decoded event at a time; the stream's end
        or a broken connection raises OpenCodeError (the caller decides whether the server died)."""
        try:
            response = await self._http.stream("GET", self._url("/event"), headers={"accept": "text/event-stream", **self.server.headers},
                                               timeout=EVENT_STREAM_IDLE_SECONDS)
        except Exception as exc:
            raise OpenCodeError(f"The OpenCode server at {self.server.url} could not be reached.") from exc
        try:
            if response.status != 200:
                raise OpenCodeError(f"The OpenCode server answered HTTP {response.status} to its event stream.")
            async for event in parse_events(response.chunks):
                try:
                    decoded = json.loads(event.data)
                except ValueError:
                    continue
                if isinstance(decoded, dict) and isinstance(decoded.get("type"), str):
                    yield decoded
        except OpenCodeError:
            raise
        except Exception as exc:
            raise OpenCodeError("The connection to the OpenCode server broke.") from exc
        finally:
            await response.close()
        raise OpenCodeError("The OpenCode server ended its event stream.")


class OpenCodeEngine:
    """`FASTEST_AI_PROVIDER=opencode`: OpenCode answers conversations. For a plain completion
    (summaries, merges) it hands over to `completions`, the OpenAI-compatible model behind it
    (or the builtin engine, which generates nothing)."""

    provider = PROVIDER

    def __init__(self, model: OpenCodeModel | None, *, base_url: str, api_key: str | None, completions: AIModel) -> None:
        self.opencode_model = model
        self.model = f"{model.provider_id}/{model.model_id}" if model else "default"
        self.base_url = base_url
        self.api_key = api_key
        self._completions = completions
        # Whether a plain completion gets an answer here (summaries, merges, action-item runs).
        self.generates = getattr(completions, "provider", "builtin") != "builtin"

    def config(self) -> dict[str, Any]:
        return opencode_config(self.opencode_model, base_url=self.base_url, api_key=self.api_key)

    def secrets(self) -> dict[str, str]:
        return {KEY_VARIABLE: self.api_key} if self.api_key else {}

    async def complete(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> Mapping[str, Any]:
        return await self._completions.complete(messages, **options)

    def stream(self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None = None,
               **options: Any) -> AsyncIterator[Mapping[str, Any]]:
        return self._completions.stream(messages, tools=tools, **options)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._completions.embed(texts)


class RemoteOpenCodeHost:
    """An OpenCode server its operator runs (a container, a machine): `FASTEST_OPENCODE_URL`, with
    `FASTEST_OPENCODE_PASSWORD` when it has one (`OPENCODE_SERVER_PASSWORD` there). Every
    conversation has its own session on it; the server's own configuration holds the model and
    its key, and the files it works on are its own directory's."""

    def __init__(self, url: str, password: str = "") -> None:
        self._server = OpenCodeServer(url=url.rstrip("/"), headers=basic_auth(USERNAME, password) if password else {})

    async def server(self, name: str, config: Mapping[str, Any], secrets: Mapping[str, str]) -> OpenCodeServer:
        return self._server

    def done(self, name: str) -> None:
        """The operator's server runs on: nothing to stop."""
