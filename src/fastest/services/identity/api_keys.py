"""Users' LLM provider API keys: sealed with the Vault, listed masked, revealed rarely.

A key is AES-GCM ciphertext bound to its owner and provider (associated data = user id + provider),
so a ciphertext copied to another row or another user does not open. The row records which vault key
sealed it (`key_id`) for rotation. Nothing of the value is stored in clear; the masked list opens
each value to show its last 4 characters. `provider_key` is the server-side way in (conversations
use it to call the user's provider); it is not exposed over HTTP.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from fastest.domain.masking import mask_secret
from fastest.errors import Internal, NotFound
from fastest.platform import Platform, envelope
from fastest.ports import VaultError
from fastest.services.common import new_id, now_iso
from fastest.services.identity import audit
from fastest.services.identity.audit import RequestContext

# The env var each provider's key is revealed as; other providers get <PROVIDER>_API_KEY.
KEY_NAMES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_GENERATIVE_AI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
}
VISIBLE_CHARS = 4


class KeyUnreadable(Internal):
    code = "key_unreadable"


def key_name_for(provider: str) -> str:
    return KEY_NAMES.get(provider) or re.sub(r"[^A-Z0-9]", "_", provider.upper()) + "_API_KEY"


async def _open(platform: Platform, row: Mapping[str, Any]) -> str:
    return await platform.vault.decrypt(row["value_ciphertext"], owner=row["user_id"], purpose=row["provider"])


async def _open_or_raise(platform: Platform, row: Mapping[str, Any]) -> str:
    """The key's value; a value that does not open (tampered, or moved between rows) is a 500."""
    try:
        return await _open(platform, row)
    except VaultError as exc:
        raise KeyUnreadable(f"The stored {row['provider']} key could not be decrypted; set it again.") from exc


async def _rows(platform: Platform, user_id: str) -> list[Mapping[str, Any]]:
    return (
        await platform.db.prepare("SELECT * FROM api_keys WHERE user_id = ? ORDER BY provider").bind(user_id).all()
    ).results


async def list_masked(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    listed = []
    for row in await _rows(platform, user_id):
        try:
            masked = mask_secret(await _open(platform, row), visible=VISIBLE_CHARS)
        except VaultError:
            masked = mask_secret()
        listed.append(
            {
                "id": row["id"],
                "user_id": row["user_id"],
                "provider": row["provider"],
                "key_name": row["key_name"],
                "key_value": masked,
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }
        )
    return listed


async def set_key(platform: Platform, user_id: str, provider: str, value: str, context: RequestContext) -> None:
    """Create or replace the user's key for `provider` (audited, the value never logged)."""
    sealed = await platform.vault.encrypt(value, owner=user_id, purpose=provider)
    key_id = envelope.decode(sealed).key_id
    now = now_iso(platform)
    await platform.db.batch(
        [
            platform.db.prepare(
                "INSERT INTO api_keys (id, user_id, provider, key_name, value_ciphertext, key_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(user_id, provider) DO UPDATE SET "
                "value_ciphertext = excluded.value_ciphertext, key_id = excluded.key_id, updated_at = excluded.updated_at"
            ).bind(new_id(platform, "key"), user_id, provider, key_name_for(provider), sealed, key_id, now, now),
            audit.record(platform, user_id, "api_key.set", f"Set the {provider} API key", context, {"provider": provider}),
        ]
    )


async def delete_key(platform: Platform, user_id: str, provider: str, context: RequestContext) -> None:
    results = await platform.db.batch(
        [
            platform.db.prepare("DELETE FROM api_keys WHERE user_id = ? AND provider = ?").bind(user_id, provider),
            audit.record(
                platform, user_id, "api_key.deleted", f"Deleted the {provider} API key", context,
                {"provider": provider}, if_changed=True,
            ),
        ]
    )
    if results[0].changes != 1:
        raise NotFound(f"No API key for provider {provider!r}.")


async def reveal(platform: Platform, user_id: str, context: RequestContext) -> dict[str, str]:
    """Every key as `{KEY_NAME: value}` (the HTTP layer requires `secrets:read` + a fresh session)."""
    rows = await _rows(platform, user_id)
    values = {row["key_name"]: await _open_or_raise(platform, row) for row in rows}
    await platform.db.batch(
        [
            audit.record(
                platform, user_id, "secrets.revealed", f"Revealed {len(rows)} API key(s)", context,
                {"providers": [r["provider"] for r in rows]},
            )
        ]
    )
    return values


async def provider_key(platform: Platform, user_id: str, provider: str) -> str | None:
    """The user's decrypted key for `provider`, or None if they have not set one. For server-side
    use only (calling the provider on the user's behalf): no fresh-session rule, never over HTTP.
    A value that does not open (tampered or moved between rows) raises `KeyUnreadable`."""
    row = await platform.db.prepare("SELECT * FROM api_keys WHERE user_id = ? AND provider = ?").bind(
        user_id, provider
    ).first()
    return None if row is None else await _open_or_raise(platform, row)
