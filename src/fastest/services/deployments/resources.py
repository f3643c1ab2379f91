"""Provisioned resources (D1 databases, KV namespaces, R2 buckets) of a project.

Created by a project deploy for what detection found missing; listed with their connection info
masked; deleted by destroying them in the provider first (a provider that refuses keeps the row, so
nothing is forgotten while it still exists somewhere).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from fastest.domain.masking import mask_secret
from fastest.errors import NotFound, Unavailable
from fastest.platform import Platform
from fastest.ports import DeployError, DeployProvider
from fastest.services import events, projects
from fastest.services.common import dumps, new_id, now_iso
from fastest.services.deployments import providers as deploy_providers

_COLUMNS = "id, user_id, project_id, type, provider, name, binding, status, external_id, connection_ciphertext, created_at, updated_at"


def _purpose(resource_id: str) -> str:
    return f"deploy-resource:{resource_id}"


def resource_view(row: Mapping[str, Any], connection_keys: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "id": row["id"], "project_id": row["project_id"], "type": row["type"], "provider": row["provider"],
        "name": row["name"], "binding": row["binding"], "status": row["status"], "external_id": row["external_id"],
        "connection_info": {key: mask_secret() for key in connection_keys},
        "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


async def _view(platform: Platform, row: Mapping[str, Any]) -> dict[str, Any]:
    keys: list[str] = []
    if row["connection_ciphertext"]:
        opened = await platform.vault.decrypt(row["connection_ciphertext"], owner=row["project_id"], purpose=_purpose(row["id"]))
        keys = sorted(json.loads(opened))
    return resource_view(row, keys)


async def rows_for(platform: Platform, project_id: str, provider: str | None = None) -> list[dict[str, Any]]:
    sql = f"SELECT {_COLUMNS} FROM resources WHERE project_id = ?"
    args: list[Any] = [project_id]
    if provider is not None:
        sql += " AND provider = ?"
        args.append(provider)
    return (await platform.db.prepare(sql + " ORDER BY created_at, id").bind(*args).all()).results


async def list_masked(platform: Platform, user_id: str, project_id: str) -> list[dict[str, Any]]:
    await projects.get_owned(platform, user_id, project_id)
    return [await _view(platform, row) for row in await rows_for(platform, project_id)]


async def _get_row(platform: Platform, user_id: str, project_id: str, resource_id: str) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    row = await platform.db.prepare(
        f"SELECT {_COLUMNS} FROM resources WHERE id = ? AND project_id = ? AND user_id = ?"
    ).bind(resource_id, project_id, user_id).first()
    if row is None:
        raise NotFound("Resource not found.")
    return row


async def get_masked(platform: Platform, user_id: str, project_id: str, resource_id: str) -> dict[str, Any]:
    return await _view(platform, await _get_row(platform, user_id, project_id, resource_id))


async def delete(platform: Platform, user_id: str, project_id: str, resource_id: str) -> None:
    row = await _get_row(platform, user_id, project_id, resource_id)
    provider = await deploy_providers.provider_for(platform, user_id, row["provider"])
    if row["external_id"]:
        try:
            await provider.destroy_resource(row["type"], row["external_id"])
        except DeployError as exc:
            raise Unavailable(f"{row['provider']} could not destroy the resource: {exc}", code="provider_error") from exc
    await platform.db.batch([
        platform.db.prepare("DELETE FROM resources WHERE id = ?").bind(resource_id),
        *events.record(platform, project_id, user_id, "resource.deleted", f"Deleted {row['type']} {row['name']}",
                       {"resource_id": resource_id, "type": row["type"], "name": row["name"]}),
    ])


async def provision(platform: Platform, user_id: str, project_id: str, provider: DeployProvider, provider_name: str,
                    wanted: Sequence[Mapping[str, Any]], name_prefix: str) -> list[dict[str, Any]]:
    """Create, in the provider, each wanted `{type, name, binding}` the project lacks there; returns
    the new resources (masked). Raises DeployError when the provider refuses."""
    existing = {(r["type"], r["name"]) for r in await rows_for(platform, project_id, provider_name)}
    created: list[dict[str, Any]] = []
    for want in wanted:
        kind, name = str(want["type"]), str(want["name"])
        if (kind, name) in existing:
            continue
        made = await provider.create_resource(kind, f"{name_prefix}-{name}"[:63])
        resource_id = new_id(platform, "res")
        sealed = await platform.vault.encrypt(dumps(dict(made.connection)), owner=project_id, purpose=_purpose(resource_id))
        now = now_iso(platform)
        await platform.db.batch([
            platform.db.prepare(
                "INSERT INTO resources (id, user_id, project_id, type, provider, name, binding, status, external_id, "
                "connection_ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'ready', ?, ?, ?, ?)"
            ).bind(resource_id, user_id, project_id, kind, provider_name, name, want.get("binding"), made.external_id,
                   sealed, now, now),
            *events.record(platform, project_id, user_id, "resource.provisioned", f"Provisioned {kind} {name}",
                           {"resource_id": resource_id, "type": kind, "name": name, "provider": provider_name}),
        ])
        existing.add((kind, name))
        created.append(await get_masked(platform, user_id, project_id, resource_id))
    return created
