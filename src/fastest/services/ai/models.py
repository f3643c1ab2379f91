"""Which model answers for a user: the configured provider, with the key the user stored for it.

A user's own key (`POST /v1/auth/api-keys`) wins over the server's FASTEST_AI_API_KEY for the
providers that take keys; the adapters themselves are built by the platform (`model_factory`).
"""

from __future__ import annotations

from fastest.platform import Platform
from fastest.ports import AIModel
from fastest.services.identity import api_keys

KEYED_PROVIDERS = ("openai", "anthropic")


async def for_user(platform: Platform, user_id: str) -> AIModel:
    """The model for this user's AI work; its `provider` is "builtin" when no model is configured
    (the builtin engine, which generates nothing)."""
    if platform.model_factory is None:
        raise RuntimeError("the platform has no model factory")
    provider = platform.settings.ai_provider.strip().lower()
    key = await api_keys.provider_key(platform, user_id, provider) if provider in KEYED_PROVIDERS else None
    return platform.model_factory(key)


def is_model(model: AIModel) -> bool:
    """False for the builtin engine: no model, so nothing to ask it (and no AI budget spent)."""
    return getattr(model, "provider", None) != "builtin"
