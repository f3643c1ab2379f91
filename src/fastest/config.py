"""Settings, read once from environment variables (local) or Worker vars and secrets (Cloudflare).

There are no module-level settings: `Settings.from_mapping(env)` is called where a platform is built,
and the resulting object is handed down explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    environment: str = "local"
    public_url: str = "http://127.0.0.1:8787"
    # Largest JSON request body. Blob uploads have their own limit below.
    max_body_bytes: int = 1 * MIB
    # Largest single blob, the same on both runtimes (the Worker isolate has 128 MB).
    blob_max_bytes: int = 32 * MIB
    # Most frames one `POST /v1/blobs/batch` may carry (their total is bounded by blob_max_bytes).
    blob_batch_max_frames: int = 1000
    # GC keeps whatever was uploaded, checked or relied on within this many seconds, reachable or not,
    # so an upload racing a snapshot is never collected.
    gc_grace_seconds: int = 24 * 60 * 60
    rate_limit_per_minute: int = 60
    # Blob and manifest transfer: a push of a large tree is hundreds of small requests.
    sync_rate_limit_per_minute: int = 3000
    ai_rate_limit_per_minute: int = 6
    # A sync deleting or replacing more than this share of a workspace's files needs confirming.
    sync_mass_change_percent: int = 50
    token_ttl_days: int = 30
    fresh_session_minutes: int = 15
    idempotency_ttl_hours: int = 24
    # Comma-separated origins allowed by CORS; empty means no cross-origin browser access.
    cors_origins: str = ""
    # The model behind conversations (and other AI features): "builtin" (no model: explains how to
    # configure one and serves the file tools through explicit commands), "openai" (any
    # OpenAI-compatible endpoint: OpenAI, llama.cpp, Ollama, vLLM…), "anthropic", or "workers-ai"
    # (the Worker's `AI` binding), or "opencode" (OpenCode is the conversation's agent, see below). A
    # user's own stored key for the provider wins over ai_api_key.
    ai_provider: str = "builtin"
    ai_base_url: str = ""
    ai_model: str = ""
    ai_api_key: str = field(default="", repr=False)
    # Seconds to wait for a model's first byte / between chunks.
    ai_timeout_seconds: int = 120
    # The AI budget guardrail: model calls per user per window; 429 ai_rate_limited after.
    ai_budget_calls: int = 200
    ai_budget_window_seconds: int = 5 * 60 * 60
    # Conversations: the largest prompt, the largest WebSocket frame a client may send, and how many
    # model rounds (each may call tools) one turn may take.
    conversation_max_prompt_bytes: int = 32 * 1024
    conversation_max_frame_bytes: int = 64 * 1024
    conversation_max_tool_rounds: int = 8
    # OpenCode as the agent (ai_provider "opencode"): the local runtime runs `opencode serve` per
    # conversation from this binary ("" = the copy `fastest serve` installs with npm under the data
    # dir), stopping a conversation's server after that many seconds without a turn; elsewhere (the
    # Worker) the OpenCode server the operator runs, and its password
    # (OPENCODE_SERVER_PASSWORD there; user "opencode").
    opencode_bin: str = ""
    opencode_idle_seconds: int = 600
    opencode_url: str = ""
    opencode_password: str = field(default="", repr=False)
    # Google sign-in: the OAuth client ids an ID token's `aud` may name (comma-separated; empty
    # disables Google sign-in) and where Google's signing keys are published.
    google_client_ids: str = ""
    google_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    # The device page's Google sign-in redirect (OpenID Connect implicit flow, form_post).
    google_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    # The user the local runtime's device page signs in as when Google is not configured (local only).
    local_owner_email: str = "owner@localhost"
    # The Atlas: source files one request reads before the index goes on in the background (202), and
    # per background step; the embedding model of Atlas search ("" = the provider's default: Workers
    # AI's @cf/baai/bge-base-en-v1.5, none for OpenAI-compatible servers; the local runtime's own
    # model when the provider has none).
    atlas_request_files: int = 1500
    atlas_step_files: int = 1500
    ai_embedding_model: str = ""
    device_code_ttl_seconds: int = 900
    device_poll_interval_seconds: int = 5
    # Integration webhooks: allow plain-HTTP targets on loopback (a receiver on this machine). Local
    # runtime only (ignored on Cloudflare); off by default. "1"/"true"/"yes"/"on" switch it on.
    webhooks_allow_loopback_http: str = ""
    # The local server: the reverse proxies (addresses or networks, comma-separated) whose
    # X-Forwarded-For/-Proto are believed. Empty: none, the peer address is the client's.
    forwarded_allow_ips: str = ""
    # Deployments: whether the local runtime may run a project's build command itself (a subprocess
    # with a timeout and an output cap); off by default, so builds run on the CLI's machine. The
    # key that signs the pipeline's callback tokens (empty: one the server makes and seals itself).
    deploy_builds_enabled: int = 0
    deploy_build_timeout_seconds: int = 600
    deploy_build_max_output_bytes: int = 1 * MIB
    deploy_signing_key: str = field(default="", repr=False)
    # Cloudflare's REST API (the cloudflare deploy provider); tests point it at a loopback stand-in.
    cloudflare_api_base: str = "https://api.cloudflare.com/client/v4"
    # Billing with Paddle. The Billing API (the sandbox by default; live is
    # https://api.paddle.com) and its key; the webhook's secrets (comma-separated: several during a
    # rotation) and how far a signature's timestamp may be from now; each paid plan's Paddle price id
    # (FASTEST_PADDLE_PRICE_<PLAN>); plan limits as JSON over the defaults (see README, Billing).
    paddle_api_url: str = "https://sandbox-api.paddle.com"
    paddle_api_key: str = field(default="", repr=False)
    paddle_webhook_secrets: str = field(default="", repr=False)
    paddle_webhook_tolerance_seconds: int = 5
    paddle_price_pro: str = ""
    paddle_price_team: str = ""
    billing_plans: str = ""
    # Action-item runs: seconds before a failed attempt is retried (doubling with each attempt).
    action_item_run_retry_seconds: int = 30

    @classmethod
    def from_mapping(cls, env: Mapping[str, Any]) -> "Settings":
        """Build settings from `FASTEST_*` names (e.g. `FASTEST_BLOB_MAX_BYTES`), ignoring the rest.

        Values are converted to the field's type; a malformed number fails loudly at start-up rather
        than being silently replaced by a default.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get("FASTEST_" + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = int(raw) if f.type == "int" else str(raw)
        return cls(**values)

    @property
    def allowed_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def google_audiences(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.google_client_ids.split(",") if c.strip())

    @property
    def webhooks_loopback_http(self) -> bool:
        return self.webhooks_allow_loopback_http.strip().lower() in ("1", "true", "yes", "on")
