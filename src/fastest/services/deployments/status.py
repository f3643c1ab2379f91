"""A deployment's record, its log and its forward-only status changes.

Every status change is one `db.batch`: the guarded update (only from the status read, with the
callback number expected), its project events and its log line land together, or not at all.
"""

from __future__ import annotations

from typing import Any, Mapping

from fastest.domain import deploy_pipeline
from fastest.domain.deploy_pipeline import InvalidTransition
from fastest.errors import Conflict
from fastest.platform import Platform
from fastest.ports import DatabaseError, Statement
from fastest.services import events
from fastest.services.common import now_iso

MAX_LOG_MESSAGE = 4000
SELECT_DEPLOYMENTS = (
    "SELECT id, user_id, project_id, workspace_id, conversation_id, snapshot_id, provider, status, trigger, slug, url, "
    "error, source_manifest_hash, output_manifest_hash, provider_version, rollback_of, callback_seq, created_at, "
    "started_at, completed_at, updated_at, seq FROM deployments"
)

async def by_id(platform: Platform, deployment_id: str) -> dict[str, Any] | None:
    return await platform.db.prepare(f"{SELECT_DEPLOYMENTS} WHERE id = ?").bind(deployment_id).first()

def log_statement(platform: Platform, deployment_id: str, step: str, message: str) -> Statement:
    return platform.db.prepare(
        "INSERT INTO deployment_logs (deployment_id, step, message, created_at) VALUES (?, ?, ?, ?)"
    ).bind(deployment_id, step, message[:MAX_LOG_MESSAGE], now_iso(platform))

async def append_log(platform: Platform, deployment_id: str, step: str, message: str) -> None:
    await log_statement(platform, deployment_id, step, message).run()

async def read_logs(platform: Platform, deployment_id: str, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    rows = (await platform.db.prepare(
        "SELECT seq, step, message, created_at FROM deployment_logs WHERE deployment_id = ? AND seq > ? ORDER BY seq LIMIT ?"
    ).bind(deployment_id, after, limit).all()).results
    return [dict(r) for r in rows]

_SUMMARIES = {
    "deployment.started": "Deployment {id} started", "build.started": "Build of {id} started",
    "build.completed": "Build of {id} completed", "build.failed": "Build of {id} failed",
    "deployment.ready": "Deployment {id} is live", "deployment.failed": "Deployment {id} failed",
    "deployment.canceled": "Deployment {id} canceled",
}

def event_statements(platform: Platform, row: Mapping[str, Any], types: list[str], data: Mapping[str, Any]) -> list[Statement]:
    statements: list[Statement] = []
    for type_ in types:
        statements += events.record(platform, row["project_id"], row["user_id"], type_,
                                    _SUMMARIES[type_].format(id=row["id"]),
                                    {"deployment_id": row["id"], "workspace_id": row["workspace_id"],
                                     "provider": row["provider"], **data})
    return statements

async def move(platform: Platform, row: Mapping[str, Any], target: str, *, step: str, message: str,
               url: str | None = None, error: str | None = None, output: str | None = None,
               version: str | None = None, spend_callback: bool = False) -> dict[str, Any]:
    """Move `row` (as read) to `target`, forward only. The update is guarded by the status and
    callback number read: if either changed since, the whole batch rolls back (409)."""
    try:
        types = deploy_pipeline.transition(row["status"], target)
    except InvalidTransition as exc:
        raise Conflict(str(exc), code="invalid_transition") from exc
    now = now_iso(platform)
    terminal = target in deploy_pipeline.TERMINAL
    update = platform.db.prepare(
        "UPDATE deployments SET status = ?, updated_at = ?, completed_at = CASE WHEN ? THEN ? ELSE completed_at END, "
        "url = COALESCE(?, url), error = COALESCE(?, error), output_manifest_hash = COALESCE(?, output_manifest_hash), "
        "provider_version = COALESCE(?, provider_version), callback_seq = callback_seq + ? "
        "WHERE id = ? AND status = ? AND callback_seq = ?"
    ).bind(target, now, int(terminal), now, url, error, output, version, int(spend_callback),
           row["id"], row["status"], row["callback_seq"])
    # Fails the batch (malformed JSON) when the guarded update changed nothing: nothing else lands.
    guard = platform.db.prepare("SELECT CASE WHEN changes() = 1 THEN 1 ELSE json('stale') END AS ok")
    data = {"status": target, **({"url": url} if url else {}), **({"error": error} if error else {})}
    try:
        await platform.db.batch([update, guard, log_statement(platform, row["id"], step, message),
                                 *event_statements(platform, row, types, data)])
    except DatabaseError as exc:
        raise Conflict("The deployment changed meanwhile.", code="conflict") from exc
    return await by_id(platform, row["id"])  # type: ignore[return-value]

async def fail(platform: Platform, deployment_id: str, step: str, message: str) -> dict[str, Any]:
    row = await by_id(platform, deployment_id)
    assert row is not None
    if row["status"] in deploy_pipeline.TERMINAL:
        return row
    return await move(platform, row, "failed", step=step, message=message, error=message)
