"""Which model embeds Atlas chunks (`embedder_for`), and the OpenAI-compatible `/embeddings` request
shape: POST {base}/embeddings {model, input: [...]} → {data: [{embedding: [...]}, ...]}."""

from __future__ import annotations

from functools import partial

import asyncio
import json

from fastest.config import Settings
from fastest.platform.ai import WORKERS_AI_EMBEDDING_MODEL, embedder_for
from fastest.platform.cloudflare.workers_ai import WorkersAIModel
from fastest.ports import HttpResponse


class FakeHttp:
    def __init__(self):
        self.sent = []

    async def request(self, method, url, *, headers=None, body=None, timeout=10.0):
        self.sent.append((method, url, dict(headers or {}), json.loads(body)))
        data = [{"object": "embedding", "index": i, "embedding": [0.5, float(i)]} for i, _ in enumerate(json.loads(body)["input"])]
        return HttpResponse(200, {"content-type": "application/json"}, json.dumps({"object": "list", "data": data}).encode())


def test_openai_compatible_embeddings_use_the_embedding_model_and_the_users_key():
    http = FakeHttp()
    settings = Settings(ai_provider="openai", ai_base_url="http://127.0.0.1:9/v1", ai_model="chat-model",
                        ai_embedding_model="embed-model", ai_api_key="sk-server")
    model = embedder_for(settings, http, "sk-user")
    vectors = asyncio.run(model.embed(["a", "b"]))
    assert vectors == [[0.5, 0.0], [0.5, 1.0]]
    method, url, headers, body = http.sent[0]
    assert (method, url) == ("POST", "http://127.0.0.1:9/v1/embeddings")
    assert body == {"model": "embed-model", "input": ["a", "b"]} and headers["authorization"] == "Bearer sk-user"


def test_the_choice_of_embedder():
    local = object()
    # An OpenAI-compatible provider without an embedding model: the local runtime's own model.
    assert embedder_for(Settings(ai_provider="openai", ai_model="m"), FakeHttp(), local=lambda: local) is local
    assert embedder_for(Settings(), None) is None  # no provider, no local model (the Worker without AI)
    binding = object()
    workers = embedder_for(Settings(ai_provider="workers-ai"), None, workers_ai=partial(WorkersAIModel, binding))
    assert workers.provider == "workers-ai" and workers.model == WORKERS_AI_EMBEDDING_MODEL
