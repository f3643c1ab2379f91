"""Implementations of the ports: `cloudflare` (env bindings) and `local` (SQLite + files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine

from fastest.config import Settings
from fastest.ports import (
    AIModel,
    Background,
    BlobStore,
    Clock,
    Database,
    EmbeddingModel,
    HttpClient,
    KeyValue,
    OpenCodeHost,
    RateLimiter,
    SessionNamespace,
    SignatureVerifier,
    Vault,
    VectorIndex,
)


def _cloudflare_deploy_provider(platform: "Platform", api_token: str, account_id: str) -> Any:
    from fastest.platform.deploy_cloudflare import CloudflareDeployProvider

    return CloudflareDeployProvider(platform.http, api_token, account_id, platform.settings.cloudflare_api_base)


ACCOUNT_DEPLOY_PROVIDERS: dict[str, Callable[..., Any]] = {"cloudflare": _cloudflare_deploy_provider}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a runtime can do, for the services and routes that differ by it."""

    # A browser on the server's own machine may sign in as its owner (the device page), and webhooks
    # may target plain HTTP on loopback when the operator allows it: the server runs on the user's
    # machine. A Worker has no "own machine" and reaches no private networks.
    serves_its_own_machine: bool = False
    # Work handed to `Platform.defer` may run for minutes (a process that outlives the request);
    # otherwise it is bounded (`ctx.waitUntil`), and long work goes on in cron-driven steps.
    long_background_work: bool = False
    # The database is the server's own SQLite file: whole-table maintenance (an FTS5 `optimize`) is
    # affordable. On D1 one table holds every tenant and a statement's work is bounded.
    whole_table_maintenance: bool = False
    # The request header the platform's edge sets to the client's address (a client cannot forge
    # it there); None: the socket's peer is the client.
    client_ip_header: str | None = None


EDGE = Capabilities(client_ip_header="cf-connecting-ip")
LOCAL = Capabilities(serves_its_own_machine=True, long_background_work=True, whole_table_maintenance=True)


@dataclass(slots=True)
class Platform:
    """Everything a service may touch, built once per process (local) or per isolate (Worker)."""

    db: Database
    blobs: BlobStore
    kv: KeyValue
    sessions: SessionNamespace
    clock: Clock
    vault: Vault
    rate_limiter: RateLimiter
    settings: Settings
    http: HttpClient | None = None
    # The configured model built with a given API key (None: the server's own), or the builtin
    # engine when no model is configured: how a user's stored key reaches their AI calls
    # (`services.models.for_user`) without services building adapters themselves.
    model_factory: Callable[[str | None], AIModel] | None = None
    signatures: SignatureVerifier | None = None
    # Embeddings for the Atlas (the provider's embedding model with a given API key, or the local
    # runtime's own model; None: no embeddings here) and where their vectors live.
    embedder_factory: Callable[[str | None], EmbeddingModel | None] | None = None
    vectors: VectorIndex | None = None
    # What this runtime can do: services ask it, never the runtime's name. The defaults are the
    # edge's (a Worker behind Cloudflare): none of the local runtime's conveniences.
    capabilities: Capabilities = field(default_factory=lambda: EDGE)
    # Release functions for what the platform opened (files, connections), run by `close()` in
    # reverse order. Empty on Cloudflare, where the runtime owns the bindings.
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Work after the response (integration webhook deliveries): see `defer`.
    background: Background | None = None
    # Where conversations' OpenCode servers run (FASTEST_AI_PROVIDER=opencode): processes of this
    # machine (local), or the operator's server (FASTEST_OPENCODE_URL); None: nowhere here.
    opencode: OpenCodeHost | None = None
    # What other capabilities do when an event is recorded (`services.events.reactions.Reaction`s),
    # handed over by whoever composes the platform; empty: nothing reacts.
    reactions: tuple[Any, ...] = ()
    # State a service keeps for the platform's lifetime (per process locally, per isolate on the
    # Worker), by the service's name; each service bounds what it keeps (e.g. `webhooks.senders`).
    service_state: dict[str, Any] = field(default_factory=dict)

    def defer(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Run `work` in the background if this runtime can (False, and `work` closed, if not)."""
        if self.background is None:
            work.close()
            return False
        return self.background.defer(work)
    # Deploy providers that need no user credential, by name (locally: "local"); providers on a
    # user's own account (cloudflare) are built per credential by `services.deploy_providers`.
    deploy_providers: dict[str, Any] = field(default_factory=dict)
    # Runs a project's build command over its files (local runtime, when the operator allows builds).
    deploy_builder: Any = None
    # Providers on a user's own account, by name: (platform, api token, credential metadata) → a
    # DeployProvider. Services build them from a stored credential without knowing the adapters.
    deploy_provider_factories: dict[str, Callable[..., Any]] = field(default_factory=lambda: dict(ACCOUNT_DEPLOY_PROVIDERS))

    def close(self) -> None:
        closers, self.closers = self.closers, []
        for closer in reversed(closers):
            closer()
