"""Deploying a conversation's working tree (`POST /v1/conversations/:id/deploy`), and its deployments
with their logs (`GET …/deployments`, `GET …/deployments/:deployment_id/logs`).

The working tree (the session's overlay on its base) is frozen into a snapshot when it has edits
(as `POST …/snapshot` does), then deployed like a project deploy with trigger `chat` and the
conversation's id on the record. The record is handed to the conversation's session object, which
keeps it with the conversation; D1 stays the truth for status and logs, read live here.
"""

from __future__ import annotations

from typing import Any

from fastest.errors import NotFound
from fastest.platform import Platform
from fastest.services import deployments
from fastest.services.conversations import registry as conversations


async def deploy(platform: Platform, user_id: str, conversation_id: str, *,
                 spawn: deployments.Spawn | None = None) -> dict[str, Any]:
    conversation = await conversations.get_owned(platform, user_id, conversation_id)
    state = await conversations.call(platform, user_id, conversation_id, "GET", "/files/changes")
    if state.get("changes") or not state.get("manifest_hash"):
        frozen = await conversations.snapshot(platform, user_id, conversation_id, generate_summary=False)
        manifest_hash, snapshot_id = frozen["manifest_hash"], frozen["snapshot_id"]
    else:
        manifest_hash, snapshot_id = state["manifest_hash"], state.get("snapshot_id")
    result = await deployments.deploy_project(
        platform, user_id, conversation["project_id"], workspace_id=conversation["workspace_id"], trigger="chat",
        snapshot_id=snapshot_id, source_manifest_hash=manifest_hash, conversation_id=conversation_id, spawn=spawn)
    record = result["deployment"]
    await conversations.call(platform, user_id, conversation_id, "POST", "/deployments", {
        "id": record["id"], "status": record["status"], "url": record["url"], "error": record["error"],
        "snapshot_id": record["snapshot_id"], "started_at": record["started_at"]})
    return result


async def list_for(platform: Platform, user_id: str, conversation_id: str) -> dict[str, Any]:
    await conversations.get_owned(platform, user_id, conversation_id)
    return {"deployments": await deployments.list_for_conversation(platform, conversation_id)}


async def logs(platform: Platform, user_id: str, conversation_id: str, deployment_id: str) -> dict[str, Any]:
    await conversations.get_owned(platform, user_id, conversation_id)
    row = await deployments.get_owned(platform, user_id, deployment_id)
    if row["conversation_id"] != conversation_id:
        raise NotFound("Deployment not found.")
    return {"logs": await deployments.read_logs(platform, deployment_id, limit=5000), "status": row["status"]}
