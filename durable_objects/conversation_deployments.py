"""The conversation's own record of the deployments made from it (the session's storage), kept
beside its messages; status and logs are read live from D1 by `fastest.services.conversations.deploys`."""

from __future__ import annotations

from typing import Any, Mapping

DEPLOYMENT_PREFIX = "deployment:"
FIELDS = ("id", "status", "url", "error", "snapshot_id", "started_at")


async def record_deployment(storage: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    record = {key: body.get(key) for key in FIELDS}
    if not isinstance(record["id"], str) or not record["id"]:
        return {"success": False}
    await storage.put(DEPLOYMENT_PREFIX + record["id"], record)
    return {"success": True}
