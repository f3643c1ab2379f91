"""Deployments as the API and other capabilities read them: one, by host label, a workspace's or a
conversation's history, the log, and the projects whose last deployment failed (for action items)."""

from __future__ import annotations

from typing import Any, Mapping

from fastest.domain import deploy_pipeline
from fastest.errors import NotFound
from fastest.platform import Platform
from fastest.services.common import split_page
from fastest.services.deployments.status import SELECT_DEPLOYMENTS, read_logs
from fastest.services.sync import workspaces


def deployment_view(row: Mapping[str, Any], platform: Platform | None = None) -> dict[str, Any]:
    view = {
        "id": row["id"], "workspace_id": row["workspace_id"], "project_id": row["project_id"],
        "snapshot_id": row["snapshot_id"], "conversation_id": row["conversation_id"], "provider": row["provider"],
        "status": row["status"], "trigger": row["trigger"], "url": row["url"], "error": row["error"],
        "output_manifest_hash": row["output_manifest_hash"], "rollback_of": row["rollback_of"],
        "created_at": row["created_at"], "started_at": row["started_at"], "completed_at": row["completed_at"],
    }
    local = platform.deploy_providers.get(row["provider"]) if platform is not None else None
    fallback = getattr(local, "fallback_url", None)
    view["fallback_url"] = fallback(row["slug"]) if fallback is not None and row["status"] == "ready" else None
    return view


async def with_project_url(platform: Platform, view: dict[str, Any]) -> dict[str, Any]:
    """Add `project_url`: the project's stable local address (its latest ready local deployment)."""
    local = platform.deploy_providers.get(view["provider"])
    site_url = getattr(local, "site_url", None)
    if site_url is None or view["status"] != "ready":
        return {**view, "project_url": None}
    name = await platform.db.prepare("SELECT name FROM projects WHERE id = ?").bind(view["project_id"]).first("name")
    return {**view, "project_url": site_url(deploy_pipeline.project_slug(name or "project", view["project_id"]))}


async def get_owned(platform: Platform, user_id: str, deployment_id: str) -> dict[str, Any]:
    row = await platform.db.prepare(f"{SELECT_DEPLOYMENTS} WHERE id = ? AND user_id = ?").bind(deployment_id, user_id).first()
    if row is None:
        raise NotFound("Deployment not found.")
    return row


async def by_slug(platform: Platform, slug: str) -> dict[str, Any] | None:
    """A ready deployment by its host label (the local server's site routing)."""
    return await platform.db.prepare(f"{SELECT_DEPLOYMENTS} WHERE slug = ? AND status = 'ready'").bind(slug).first()


async def live_for_project_slug(platform: Platform, slug: str) -> dict[str, Any] | None:
    """The latest ready local deployment of the project whose address label is `slug`."""
    suffix = slug.rsplit("-", 1)[-1]
    rows = (await platform.db.prepare(
        "SELECT d.user_id, d.output_manifest_hash, p.id AS project_id, p.name FROM deployments d "
        "JOIN projects p ON p.id = d.project_id WHERE lower(substr(p.id, -8)) = ? AND d.status = 'ready' "
        "AND d.provider = 'local' AND d.output_manifest_hash IS NOT NULL ORDER BY d.seq DESC LIMIT 50"
    ).bind(suffix).all()).results
    return next((r for r in rows if deploy_pipeline.project_slug(r["name"], r["project_id"]) == slug), None)


async def list_for_workspace(platform: Platform, user_id: str, workspace_id: str, *, limit: int,
                             before_seq: int | None) -> tuple[list[dict[str, Any]], str | None]:
    await workspaces.get_owned(platform, user_id, workspace_id)
    after, args = ("AND seq < ?", [before_seq]) if before_seq is not None else ("", [])
    rows = (await platform.db.prepare(
        f"{SELECT_DEPLOYMENTS} WHERE workspace_id = ? {after} ORDER BY seq DESC LIMIT ?"
    ).bind(workspace_id, *args, limit + 1).all()).results
    page, cursor = split_page(rows, limit, lambda r: (r["seq"],))
    return [deployment_view(r, platform) for r in page], cursor


async def list_for_conversation(platform: Platform, conversation_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = (await platform.db.prepare(
        f"{SELECT_DEPLOYMENTS} WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?"
    ).bind(conversation_id, limit).all()).results
    return [deployment_view(r, platform) for r in rows]


# --- logs ------------------------------------------------------------------------------------


async def logs(platform: Platform, user_id: str, deployment_id: str, *, after: int, limit: int) -> dict[str, Any]:
    row = await get_owned(platform, user_id, deployment_id)
    lines = await read_logs(platform, deployment_id, after=after, limit=limit)
    return {"logs": lines, "status": row["status"], "next_after": lines[-1]["seq"] if lines else after}


# Each project whose latest deployment failed, with how many failed in a row since the last one that
# went live (the item gets worse with each further failure).
_FAILING_PROJECTS = (
    "SELECT d.id, d.project_id, d.workspace_id, d.error, d.completed_at, d.created_at,"
    " (SELECT COUNT(*) FROM deployments f WHERE f.project_id = d.project_id AND f.status = 'failed'"
    "   AND f.seq > COALESCE((SELECT MAX(r.seq) FROM deployments r"
    "                          WHERE r.project_id = d.project_id AND r.status = 'ready'), 0)) AS failures"
    " FROM deployments d"
    " WHERE d.user_id = ? AND d.status = 'failed'"
    "   AND d.seq = (SELECT MAX(l.seq) FROM deployments l WHERE l.project_id = d.project_id"
    "                AND l.status NOT IN ('queued', 'building', 'deploying', 'canceled'))"
)


async def failing_projects(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    """The user's projects whose last finished deployment failed: `{id, project_id, workspace_id,
    error, failures, failed_at}`, one per project."""
    rows = (await platform.db.prepare(_FAILING_PROJECTS).bind(user_id).all()).results
    return [
        {"id": r["id"], "project_id": r["project_id"], "workspace_id": r["workspace_id"], "error": r["error"],
         "failures": int(r["failures"] or 1), "failed_at": r["completed_at"] or r["created_at"]}
        for r in rows
    ]


async def last_failure(platform: Platform, project_id: str) -> dict[str, Any] | None:
    """The project's last finished deployment (`{id, error}`) if it failed; None if it went live,
    was never deployed, or is still running its first."""
    row = await platform.db.prepare(
        "SELECT id, status, error FROM deployments WHERE project_id = ?"
        " AND status NOT IN ('queued', 'building', 'deploying', 'canceled') ORDER BY seq DESC LIMIT 1"
    ).bind(project_id).first()
    return {"id": row["id"], "error": row["error"]} if row is not None and row["status"] == "failed" else None
