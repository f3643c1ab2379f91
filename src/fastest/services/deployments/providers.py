"""Which `DeployProvider` a deployment uses, and the credentials of providers on a user's own account.

`local` is the platform's own (no credential; only on the local runtime). `cloudflare` is built per
request from the user's sealed credential (API token + account id) over the `HttpClient` port.
Credentials are sealed with the Vault to (user, provider), listed without their token, verified by
the provider before they are saved, and never logged or returned.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from fastest.errors import NotFound, Unavailable, ValidationFailed
from fastest.platform import Platform
from fastest.ports import DeployError, DeployProvider
from fastest.services.common import dumps, new_id, now_iso

PROVIDERS = ("local", "cloudflare")
CREDENTIAL_PROVIDERS = ("cloudflare",)


def _purpose(provider: str) -> str:
    return f"deploy-credential:{provider}"


def _cloudflare(platform: Platform, api_token: str, metadata: Mapping[str, Any]) -> DeployProvider:
    factory = platform.deploy_provider_factories.get("cloudflare")
    if platform.http is None or factory is None:
        raise Unavailable("Deploying to Cloudflare is not available on this server.")
    account_id = metadata.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        raise ValidationFailed("A Cloudflare credential needs metadata.account_id.",
                               fields={"metadata.account_id": "required"})
    return factory(platform, api_token, account_id)


def default_provider(platform: Platform) -> str:
    return "local" if "local" in platform.deploy_providers else "cloudflare"


async def provider_for(platform: Platform, user_id: str, name: str) -> DeployProvider:
    """The provider `name` for this user: the platform's own, or one on their saved credential."""
    if name in platform.deploy_providers:
        return platform.deploy_providers[name]
    if name not in CREDENTIAL_PROVIDERS:
        raise ValidationFailed(f"The {name!r} provider is not available on this server.", code="provider_unavailable",
                               fields={"provider": "not available here"})
    row = await platform.db.prepare(
        "SELECT token_ciphertext, metadata FROM provider_credentials WHERE user_id = ? AND provider = ?"
    ).bind(user_id, name).first()
    if row is None:
        raise ValidationFailed(f"Add a {name} credential first (POST /v1/infrastructure/credentials).",
                               code="credential_missing", fields={"provider": "no credential"})
    token = await platform.vault.decrypt(row["token_ciphertext"], owner=user_id, purpose=_purpose(name))
    return _cloudflare(platform, token, json.loads(row["metadata"]))


# --- credentials -----------------------------------------------------------------------------


def credential_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "user_id": row["user_id"], "provider": row["provider"],
            "metadata": json.loads(row["metadata"]), "created_at": row["created_at"], "updated_at": row["updated_at"]}


async def list_credentials(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    rows = (await platform.db.prepare(
        "SELECT id, user_id, provider, metadata, created_at, updated_at FROM provider_credentials "
        "WHERE user_id = ? ORDER BY provider"
    ).bind(user_id).all()).results
    return [credential_view(r) for r in rows]


async def save_credential(platform: Platform, user_id: str, provider: str, api_token: str,
                          metadata: Mapping[str, Any]) -> str:
    """Verify with the provider, then seal and upsert. A refused token saves nothing (422)."""
    if provider not in CREDENTIAL_PROVIDERS:
        raise ValidationFailed(f"The {provider!r} provider takes no credential.", fields={"provider": "no credential needed"})
    candidate = _cloudflare(platform, api_token, metadata)
    try:
        verified = await candidate.verify()
    except DeployError as exc:
        raise ValidationFailed(f"{provider} refused the credential: {exc}", code="credential_invalid",
                               fields={"api_token": "refused by the provider"}) from exc
    stored_metadata = {**metadata, **{k: v for k, v in verified.items() if k in ("token_id", "status")}}
    sealed = await platform.vault.encrypt(api_token, owner=user_id, purpose=_purpose(provider))
    now = now_iso(platform)
    credential_id = new_id(platform, "crd")
    await platform.db.prepare(
        "INSERT INTO provider_credentials (id, user_id, provider, token_ciphertext, metadata, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(user_id, provider) DO UPDATE SET "
        "token_ciphertext = excluded.token_ciphertext, metadata = excluded.metadata, updated_at = excluded.updated_at"
    ).bind(credential_id, user_id, provider, sealed, dumps(stored_metadata), now, now).run()
    return await platform.db.prepare(
        "SELECT id FROM provider_credentials WHERE user_id = ? AND provider = ?"
    ).bind(user_id, provider).first("id")


async def delete_credential(platform: Platform, user_id: str, provider: str) -> None:
    result = await platform.db.prepare(
        "DELETE FROM provider_credentials WHERE user_id = ? AND provider = ?"
    ).bind(user_id, provider).run()
    if result.changes == 0:
        raise NotFound("No credential for that provider.")
