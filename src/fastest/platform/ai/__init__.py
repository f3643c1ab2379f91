"""Model providers behind the `AIModel` port, shared by both runtimes (they talk HTTP through the
`HttpClient` port, or to the Workers AI binding), and the choice among them.

`model_for(settings, http, api_key=...)` builds the configured one; `model_for_key` is the same as
the platform's `model_factory`, which `services.models.for_user` calls with the user's own stored
key for the provider (else None: the server's key).
"""

from __future__ import annotations

from typing import Any, Callable

from fastest.config import Settings
from fastest.platform.ai.anthropic import AnthropicModel
from fastest.platform.ai.builtin import BuiltinEngine
from fastest.platform.ai.openai import OpenAICompatibleModel
from fastest.platform.ai.opencode import OpenCodeEngine, model_of
from fastest.ports import AIModel, EmbeddingModel, HttpClient

PROVIDERS = ("builtin", "openai", "anthropic", "workers-ai", "opencode")

def model_for(settings: Settings, http: HttpClient | None, *, api_key: str | None = None, workers_ai: Any = None) -> AIModel:
    """The configured model (the builtin engine when none is, or when what is configured cannot
    work here, e.g. an HTTP provider without an HTTP client)."""
    provider = settings.ai_provider.strip().lower()
    key = api_key or settings.ai_api_key or None
    timeout = float(settings.ai_timeout_seconds)
    if provider == "openai" and http is not None and settings.ai_model:
        return OpenAICompatibleModel(http, base_url=settings.ai_base_url, model=settings.ai_model, api_key=key, timeout=timeout)
    if provider == "anthropic" and http is not None and settings.ai_model:
        return AnthropicModel(http, base_url=settings.ai_base_url, model=settings.ai_model, api_key=key, timeout=timeout)
    if provider == "workers-ai" and workers_ai is not None:
        return workers_ai
    if provider == "opencode":
        # OpenCode runs the conversation's agent; a plain completion goes to the OpenAI-compatible
        # server FASTEST_AI_BASE_URL names, when one does.
        completions: AIModel = BuiltinEngine()
        if http is not None and settings.ai_base_url and settings.ai_model:
            completions = OpenAICompatibleModel(http, base_url=settings.ai_base_url, model=settings.ai_model, api_key=key, timeout=timeout)
        return OpenCodeEngine(model_of(settings.ai_model, settings.ai_base_url), base_url=settings.ai_base_url,
                              api_key=key, completions=completions)
    return BuiltinEngine()


WORKERS_AI_EMBEDDING_MODEL = "@cf/baai/bge-base-en-v1.5"


def embedder_for(settings: Settings, http: HttpClient | None, api_key: str | None = None, *,
                 workers_ai: Callable[[str], EmbeddingModel] | None = None, local: Any = None) -> EmbeddingModel | None:
    """The model that embeds Atlas chunks: the configured provider's embedding model (OpenAI-compatible
    `/embeddings` when FASTEST_AI_EMBEDDING_MODEL names one; Workers AI's `bge`, built by `workers_ai`
    from a model name on the Worker), else `local()` (the local runtime's in-process model), else None."""
    provider = settings.ai_provider.strip().lower()
    key = api_key or settings.ai_api_key or None
    if provider == "openai" and http is not None and settings.ai_embedding_model:
        return OpenAICompatibleModel(http, base_url=settings.ai_base_url, model=settings.ai_embedding_model, api_key=key,
                                     timeout=float(settings.ai_timeout_seconds))
    if provider == "workers-ai" and workers_ai is not None:
        return workers_ai(settings.ai_embedding_model or WORKERS_AI_EMBEDDING_MODEL)
    return local() if local is not None else None


def model_for_key(settings: Settings, http: HttpClient | None, api_key: str | None, *, workers_ai: Any = None) -> AIModel:
    """`Platform.model_factory`: the configured model with this API key (None: the server's)."""
    return model_for(settings, http, api_key=api_key, workers_ai=workers_ai)
