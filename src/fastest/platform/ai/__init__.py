"""Model providers behind the `AIModel` port, shared by both runtimes (they talk HTTP through the
`HttpClient` port, or to the Workers AI binding), and the choice among them.

`model_for(settings, http, api_key=...)` builds the configured one; `user_model(...)` resolves the
model a user's conversation runs on: the configured provider, with the user's own stored key for it
when a key lookup is wired in (else the server's key).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from fastest.config import Settings
from fastest.platform.ai.anthropic import AnthropicModel
from fastest.platform.ai.builtin import BuiltinEngine
from fastest.platform.ai.openai import OpenAICompatibleModel
from fastest.ports import AIModel, HttpClient

PROVIDERS = ("builtin", "openai", "anthropic", "workers-ai")

KeyLookup = Callable[[str, str], Awaitable[str | None]]
"""(user_id, provider) → the user's stored API key for that provider, or None."""


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
    return BuiltinEngine()


def configured_model(settings: Settings, http: HttpClient | None, *, workers_ai: Any = None) -> AIModel | None:
    """`platform.ai`: the configured model, or None when there is none (callers then do without,
    rather than getting the builtin engine's non-answers)."""
    model = model_for(settings, http, workers_ai=workers_ai)
    return None if isinstance(model, BuiltinEngine) else model


async def user_model(
    settings: Settings, http: HttpClient | None, user_id: str, *, key_lookup: KeyLookup | None = None, workers_ai: Any = None
) -> AIModel:
    provider = settings.ai_provider.strip().lower()
    key = await key_lookup(user_id, provider) if key_lookup is not None and provider in ("openai", "anthropic") else None
    return model_for(settings, http, api_key=key, workers_ai=workers_ai)
