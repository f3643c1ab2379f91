"""Which model answers for a user: the configured provider, with the key the user stored for it.

A user's own key (`POST /v1/auth/api-keys`) wins over the server's FASTEST_AI_API_KEY for the
providers that take keys; the adapters themselves are built by the platform (`model_factory`).
"""

from __future__ import annotations

from fastest.config import Settings
from fastest.platform import Platform
from fastest.ports import AIModel
from fastest.services.identity import api_keys

KEYED_PROVIDERS = ("openai", "anthropic")


def key_provider(settings: Settings) -> str | None:
    """Whose stored key a user's AI work uses: the provider's own; with OpenCode, the key of the
    provider its model comes from (`anthropic/…` → anthropic; an OpenAI-compatible server named by
    FASTEST_AI_BASE_URL → openai)."""
    provider = settings.ai_provider.strip().lower()
    if provider == "opencode":
        if settings.ai_base_url.strip():
            return "openai"
        named, _, model = settings.ai_model.strip().partition("/")
        return named.lower() if model else None
    return provider if provider in KEYED_PROVIDERS else None


async def for_user(platform: Platform, user_id: str) -> AIModel:
    """The model for this user's AI work; its `provider` is "builtin" when no model is configured
    (the builtin engine, which generates nothing)."""
    if platform.model_factory is None:
        raise RuntimeError("the platform has no model factory")
    provider = key_provider(platform.settings)
    key = await api_keys.provider_key(platform, user_id, provider) if provider else None
    return platform.model_factory(key)


def is_model(model: AIModel) -> bool:
    """False for the builtin engine: no model, so nothing to ask it (and no AI budget spent). With
    OpenCode as the agent, what it says of the completions behind it (an OpenAI-compatible server
    named by FASTEST_AI_BASE_URL, or none) for the features that ask for one answer."""
    return getattr(model, "provider", None) != "builtin" and bool(getattr(model, "generates", True))
