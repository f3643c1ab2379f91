"""The Cloudflare platform: adapters over the Worker's `env` bindings (names as in wrangler.toml).

`platform_from_env(env)` builds the `Platform` the services use. It is built once per isolate and
reused: the bindings and vars of an isolate do not change during its life, and building it (parsing
settings, importing keys) should not be paid per request. The cache is explicit and bounded; its key
is the configuration itself (settings, secrets fingerprint, which optional bindings exist), because
the SDK hands each request a fresh `env` wrapper, so object identity means nothing.

Only this package, `src/entry.py` and `durable_objects/cloudflare.py` may import `js`, `workers` or
`pyodide`, and only lazily, so everything here imports (and is unit-tested) under CPython.
"""

from __future__ import annotations

import hashlib
from functools import partial
from collections import OrderedDict
from dataclasses import fields
from typing import Any, Callable, Hashable, Mapping

from fastest.config import Settings
from fastest.platform import Platform
from fastest.platform.ai import embedder_for, model_for_key
from fastest.platform.ai.opencode import RemoteOpenCodeHost
from fastest.platform.cloudflare.background import WaitUntilBackground
from fastest.platform.cloudflare.clock import WorkersClock
from fastest.platform.cloudflare.d1 import D1Database
from fastest.platform.cloudflare.durable_objects import DurableObjectNamespace
from fastest.platform.cloudflare.interop import is_null
from fastest.platform.cloudflare.http import WorkersFetchClient
from fastest.platform.cloudflare.kv import WorkersKV
from fastest.platform.cloudflare.r2 import R2BlobStore
from fastest.platform.cloudflare.rate_limit import BindingCappedLimiter, SlidingWindowLimiter
from fastest.platform.cloudflare.signatures import WebCryptoSignatureVerifier
from fastest.platform.cloudflare.vault import UnconfiguredVault, WebCryptoVault
from fastest.platform.cloudflare.vectorize import VectorizeIndex
from fastest.platform.cloudflare.workers_ai import WorkersAIModel

__all__ = ["PlatformCache", "build_platform", "platform_for_scope", "platform_from_env", "read_vars"]

# Binding names, as declared in wrangler.toml.
DB = "DB"
BLOBS = "BLOBS"
CACHE = "CACHE"
CONVERSATIONS = "CONVERSATIONS"
RATE_LIMITER = "RATE_LIMITER"  # optional
AI = "AI"  # optional: Workers AI, used when FASTEST_AI_PROVIDER = "workers-ai"
VECTORIZE = "VECTORIZE"  # optional: the Vectorize index of the embedding model (Atlas search)

# Secrets (`wrangler secret put`), never in [vars].
VAULT_KEY = "FASTEST_VAULT_KEY"
VAULT_PREVIOUS_KEYS = "FASTEST_VAULT_PREVIOUS_KEYS"

SETTING_NAMES = tuple("FASTEST_" + f.name.upper() for f in fields(Settings))


def _get(env: Any, name: str) -> Any:
    """`env.NAME`, or None when absent (JS undefined / missing attribute)."""
    value = env.get(name) if isinstance(env, Mapping) else getattr(env, name, None)
    return None if is_null(value) else value


def read_vars(env: Any, names: tuple[str, ...] = SETTING_NAMES) -> dict[str, Any]:
    """The named vars/secrets that are set. (`env` is not enumerable from Python, so names are asked
    for one by one; `Settings.from_mapping` then reads this plain dict.)"""
    return {name: value for name in names if (value := _get(env, name)) is not None}


def _binding(env: Any, name: str) -> Any:
    value = _get(env, name)
    if value is None:
        raise RuntimeError(f"the Worker has no `{name}` binding: check wrangler.toml")
    return value


def _vault(secrets: Mapping[str, Any]) -> WebCryptoVault | UnconfiguredVault:
    current = str(secrets.get(VAULT_KEY) or "")
    if not current:
        return UnconfiguredVault()
    return WebCryptoVault(current, str(secrets.get(VAULT_PREVIOUS_KEYS) or ""))


def build_platform(env: Any, *, reactions: tuple[Any, ...] = ()) -> Platform:
    """A new `Platform` over `env`'s bindings (uncached: see `platform_from_env`)."""
    settings = Settings.from_mapping(read_vars(env))
    limiter_binding = _get(env, RATE_LIMITER)
    ai_binding = _get(env, AI)
    workers_ai = WorkersAIModel(ai_binding, settings.ai_model) if ai_binding is not None and settings.ai_model else None
    http = WorkersFetchClient()
    clock = WorkersClock()
    # The isolate's rate windows are timed by the Worker's clock, like everything else (and like the
    # local runtime's windows, by the platform clock).
    window = SlidingWindowLimiter(monotonic=lambda: clock.now().timestamp())
    return Platform(
        db=D1Database(_binding(env, DB)),
        blobs=R2BlobStore(_binding(env, BLOBS)),
        kv=WorkersKV(_binding(env, CACHE)),
        sessions=DurableObjectNamespace(_binding(env, CONVERSATIONS)),
        clock=clock,
        vault=_vault(read_vars(env, (VAULT_KEY, VAULT_PREVIOUS_KEYS))),
        rate_limiter=window if limiter_binding is None else BindingCappedLimiter(limiter_binding, window),
        settings=settings,
        http=http,
        model_factory=partial(model_for_key, settings, http, workers_ai=workers_ai),
        embedder_factory=partial(embedder_for, settings, http,
                                 workers_ai=None if ai_binding is None else partial(WorkersAIModel, ai_binding)),
        vectors=VectorizeIndex(_get(env, VECTORIZE)) if _get(env, VECTORIZE) is not None else None,
        signatures=WebCryptoSignatureVerifier(),
        background=WaitUntilBackground(),
        reactions=reactions,
        opencode=RemoteOpenCodeHost(settings.opencode_url, settings.opencode_password) if settings.opencode_url else None,
    )


def cache_key(env: Any) -> Hashable:
    """What makes two envs build different platforms: settings, secrets (by digest), optional
    bindings."""
    secrets = read_vars(env, (VAULT_KEY, VAULT_PREVIOUS_KEYS))
    digest = hashlib.sha256(repr(sorted(secrets.items())).encode("utf-8")).hexdigest()
    return (Settings.from_mapping(read_vars(env)), digest, _get(env, RATE_LIMITER) is not None)


class PlatformCache:
    """A small LRU of platforms per isolate. In practice it holds one entry; the bound only keeps a
    misconfiguration (or a test) from growing it."""

    def __init__(self, max_entries: int = 4) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[Hashable, Platform] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], Platform]) -> Platform:
        platform = self._entries.pop(key, None)
        if platform is None:
            platform = build()
        self._entries[key] = platform
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return platform

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


# The one per-isolate cache (module state by necessity: the isolate is the unit of reuse).
ISOLATE_PLATFORMS = PlatformCache()


def platform_from_env(env: Any, *, cache: PlatformCache | None = ISOLATE_PLATFORMS,
                      reactions: tuple[Any, ...] = ()) -> Platform:
    """The isolate's `Platform` for `env`, built on first use (pass `cache=None` to always build)."""
    if cache is None:
        return build_platform(env, reactions=reactions)
    return cache.get(cache_key(env), lambda: build_platform(env, reactions=reactions))
