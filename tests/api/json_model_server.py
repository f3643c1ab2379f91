"""A test-made OpenAI-compatible chat completions server on loopback that answers non-streamed
requests (`stream: false`) with scripted contents, one per call, in order (the last repeats), and
records every request (path, authorization, body) so tests can check the documented request shape
(`response_format: {type: "json_schema", json_schema: {name, schema}}`)."""

from __future__ import annotations

import json
from typing import Any

from tests.loopback import LoopbackServer, QuietHandler


class JsonModelServer(LoopbackServer):
    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.body())
                owner.requests.append({"path": self.path, "authorization": self.headers.get("authorization"), "body": body})
                if self.path != "/v1/chat/completions" or body.get("stream"):
                    self.send_error(404)
                    return
                index = min(len(owner.requests) - 1, len(owner.answers) - 1)
                answer = {"id": "chatcmpl-1", "object": "chat.completion", "model": "json-model",
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": owner.answers[index]}}]}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"



def use_model(platform, server: Any, **settings: Any) -> None:
    """Point the platform at this server as its OpenAI-compatible provider, as an operator does: by
    the settings (on edge they become the Worker's vars, and the Worker makes its own model client,
    which calls this server through its fetch)."""
    from dataclasses import replace
    from functools import partial

    from fastest.platform.ai import model_for_key
    from tests.edge_runtime import is_edge

    platform.settings = replace(platform.settings, **{"ai_provider": "openai", "ai_base_url": server.base_url,
                                                      "ai_model": "json-model", "ai_rate_limit_per_minute": 100, **settings})
    if not is_edge():  # the local platform made its model client from the settings it was opened with
        platform.model_factory = partial(model_for_key, platform.settings, platform.http)
