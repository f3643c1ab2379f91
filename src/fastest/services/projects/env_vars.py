"""Project environment variables. Secret values are sealed with the Vault (AES-GCM) before they reach
the database, bound to their project and key, and only ever revealed by `reveal` (which the HTTP layer
guards with `secrets:read` and a fresh session)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from fastest.domain.masking import mask_secret
from fastest.errors import NotFound, ValidationFailed
from fastest.platform import Platform
from fastest.ports import Statement
from fastest.services import events
from fastest.services.common import new_id, now_iso
from fastest.services.identity import audit
from fastest.services.identity.audit import RequestContext
from fastest.services.projects import registry as projects


def _purpose(key: str) -> str:
    return f"env:{key}"


def variable_view(row: Mapping[str, Any]) -> dict[str, Any]:
    secret = bool(row["is_secret"])
    return {
        "id": row["id"],
        "project_id": row["project_id"],
        "key": row["key"],
        "value": mask_secret() if secret else row["value"],
        "is_secret": secret,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def list_masked(platform: Platform, user_id: str, project_id: str) -> list[dict[str, Any]]:
    await projects.get_owned(platform, user_id, project_id)
    rows = (
        await platform.db.prepare("SELECT * FROM env_vars WHERE project_id = ? ORDER BY key").bind(project_id).all()
    ).results
    return [variable_view(r) for r in rows]


async def _upsert_statement(platform: Platform, project_id: str, key: str, value: str, is_secret: bool) -> Statement:
    now = now_iso(platform)
    plain, sealed = (None, await platform.vault.encrypt(value, owner=project_id, purpose=_purpose(key))) if is_secret else (value, None)
    return platform.db.prepare(
        "INSERT INTO env_vars (id, project_id, key, value, value_ciphertext, is_secret, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(project_id, key) DO UPDATE SET value = excluded.value, "
        "value_ciphertext = excluded.value_ciphertext, is_secret = excluded.is_secret, updated_at = excluded.updated_at"
    ).bind(new_id(platform, "env"), project_id, key, plain, sealed, int(is_secret), now, now)


async def set_many(
    platform: Platform, user_id: str, project_id: str, variables: Iterable[tuple[str, str, bool]]
) -> int:
    """Upsert (key, value, is_secret) triples atomically, with one event naming the keys (never values)."""
    await projects.get_owned(platform, user_id, project_id)
    variables = list(variables)
    keys = [key for key, _, _ in variables]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValidationFailed(
            "Each key may appear once.", fields={"variables": f"duplicate keys: {', '.join(duplicates)}"}
        )
    statements = [await _upsert_statement(platform, project_id, *v) for v in variables]
    summary = f"Set {len(keys)} environment variable{'s' if len(keys) != 1 else ''}"
    await platform.db.batch(
        [*statements, *events.record(platform, project_id, user_id, "env_vars.set", summary, {"keys": keys})]
    )
    return len(variables)


async def delete(platform: Platform, user_id: str, project_id: str, key: str) -> None:
    await projects.get_owned(platform, user_id, project_id)
    exists = await platform.db.prepare("SELECT 1 AS found FROM env_vars WHERE project_id = ? AND key = ?").bind(
        project_id, key
    ).first()
    if exists is None:
        raise NotFound(f"No environment variable named {key!r}.")
    await platform.db.batch(
        [
            platform.db.prepare("DELETE FROM env_vars WHERE project_id = ? AND key = ?").bind(project_id, key),
            *events.record(platform, project_id, user_id, "env_vars.deleted", f"Deleted {key}", {"key": key}),
        ]
    )


async def reveal(
    platform: Platform, user_id: str, project_id: str, context: RequestContext | None = None
) -> list[dict[str, Any]]:
    """Every variable in clear: a project event, and (given the request `context`) a security event."""
    await projects.get_owned(platform, user_id, project_id)
    rows = (
        await platform.db.prepare("SELECT * FROM env_vars WHERE project_id = ? ORDER BY key").bind(project_id).all()
    ).results
    revealed = []
    for row in rows:
        value = row["value"]
        if row["is_secret"]:
            value = await platform.vault.decrypt(row["value_ciphertext"], owner=project_id, purpose=_purpose(row["key"]))
        revealed.append({"key": row["key"], "value": value, "is_secret": bool(row["is_secret"])})
    keys = [r["key"] for r in rows]
    statements = events.record(
        platform, project_id, user_id, "env_vars.revealed", f"Revealed {len(rows)} environment variables",
        {"keys": keys}, touch=False,
    )
    if context is not None:
        statements.append(
            audit.record(
                platform, user_id, "secrets.revealed", f"Revealed {len(rows)} environment variables", context,
                {"project_id": project_id, "keys": keys},
            )
        )
    await platform.db.batch(statements)
    return revealed
