"""A loopback OpenAI-compatible model server for action-item runs, scripted per test: `respond`
gets the request's messages and returns the chunks to stream (helpers below build them). A
request may also be held until `release` is set (a model that hangs, for the restart test)."""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

from fastest.config import Settings
from tests.e2e.model_server import _chunk, _tool_call
from tests.loopback import LoopbackServer, QuietHandler


def text(message: str) -> list[bytes]:
    return [_chunk({"content": message}), _chunk({}, "stop")]


def tool(name: str, **arguments: Any) -> list[bytes]:
    return _tool_call(f"call_{name}", name, arguments)


class ScriptedModel(LoopbackServer):
    def __init__(self, respond: Callable[[list[dict[str, Any]]], list[bytes]]) -> None:
        self.respond = respond
        self.requests: list[dict[str, Any]] = []
        self.hold = threading.Event()  # set: requests wait for `release`
        self.release = threading.Event()
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.body())
                owner.requests.append(body)
                if owner.hold.is_set():
                    owner.release.wait(10)
                chunks = owner.respond(body["messages"])
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    for chunk in chunks:
                        self.wfile.write(chunk)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except OSError:
                    pass

        super().__init__(Handler)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        super().__exit__(*exc)


def model_settings(model: ScriptedModel, **settings: Any) -> Settings:
    """The platform's settings with `model` as its OpenAI-compatible provider."""
    return Settings(ai_provider="openai", ai_base_url=model.base_url, ai_model="test-model", ai_rate_limit_per_minute=100,
                    **settings)
