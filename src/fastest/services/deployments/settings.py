"""A workspace's deployment settings: build command, output directory, provider, auto-deploy; they
override what detection found."""

from __future__ import annotations

from typing import Any, Mapping

from fastest.errors import ValidationFailed
from fastest.platform import Platform
from fastest.services import events
from fastest.services.common import now_iso
from fastest.services.deployments import providers as deploy_providers
from fastest.services.sync import workspaces

SETTINGS_FIELDS = ("auto_deploy", "runtime_override", "build_command", "start_command", "output_dir", "provider")


def settings_view(workspace_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {"workspace_id": workspace_id, "auto_deploy": bool(row.get("auto_deploy", 0)),
            **{f: row.get(f) for f in SETTINGS_FIELDS if f != "auto_deploy"},
            "created_at": row.get("created_at"), "updated_at": row.get("updated_at")}


async def get_settings(platform: Platform, user_id: str, workspace_id: str) -> dict[str, Any]:
    await workspaces.get_owned(platform, user_id, workspace_id)
    return settings_view(workspace_id, await settings_row(platform, workspace_id))


async def update_settings(platform: Platform, user_id: str, workspace_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    workspace = await workspaces.get_owned(platform, user_id, workspace_id)
    if changes.get("provider") is not None and changes["provider"] not in deploy_providers.PROVIDERS:
        raise ValidationFailed("Unknown provider.", fields={"provider": "unknown"})
    current = await settings_row(platform, workspace_id)
    merged = {f: current.get(f) for f in SETTINGS_FIELDS}
    merged.update(changes)
    merged["auto_deploy"] = int(bool(merged.get("auto_deploy")))
    now = now_iso(platform)
    await platform.db.batch([
        platform.db.prepare(
            "INSERT INTO deployment_settings (workspace_id, project_id, auto_deploy, runtime_override, build_command, "
            "start_command, output_dir, provider, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(workspace_id) DO UPDATE SET auto_deploy = excluded.auto_deploy, "
            "runtime_override = excluded.runtime_override, build_command = excluded.build_command, "
            "start_command = excluded.start_command, output_dir = excluded.output_dir, provider = excluded.provider, "
            "updated_at = excluded.updated_at"
        ).bind(workspace_id, workspace["project_id"], merged["auto_deploy"], merged["runtime_override"],
               merged["build_command"], merged["start_command"], merged["output_dir"], merged["provider"], now, now),
        *events.record(platform, workspace["project_id"], user_id, "deployment_settings.updated",
                       f"Updated deployment settings of {workspace['name']}",
                       {"workspace_id": workspace_id, "fields": sorted(changes)}),
    ])
    return await get_settings(platform, user_id, workspace_id)


async def settings_row(platform: Platform, workspace_id: str | None) -> dict[str, Any]:
    if workspace_id is None:
        return {}
    row = await platform.db.prepare("SELECT * FROM deployment_settings WHERE workspace_id = ?").bind(workspace_id).first()
    return dict(row) if row else {}
