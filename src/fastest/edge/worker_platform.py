"""The Worker's platform: the isolate's `Platform` for `env`, composed with the application's
reactions (`services.subscriptions`). The entry, its HTTP edges and the Durable Object all take
their platform from here, so every invocation sees the same composition."""

from __future__ import annotations

from typing import Any, Mapping

from fastest.platform import Platform
from fastest.platform.cloudflare import platform_from_env
from fastest.services import subscriptions


def worker_platform(env: Any) -> Platform:
    return platform_from_env(env, reactions=subscriptions.ALL)


def platform_for_scope(scope: Mapping[str, Any]) -> Platform:
    """The `platform_provider` for `create_app`: the Workers ASGI bridge puts `env` in the scope."""
    return worker_platform(scope["env"])
