"""Workspaces: one per machine/folder a project is worked on, each with a head snapshot and a current
(possibly dirty) manifest, moved by compare-and-set; drift against main; which one is main.

Ownership is checked through the project: another user's workspace is a 404 like a missing one.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

from fastest.domain import drift
from fastest.domain.ids import iso, parse_iso
from fastest.errors import Conflict, NotFound, ValidationFailed
from fastest.platform import Platform
from fastest.services import events, projects, storage
from fastest.services.common import dumps, new_id, now_iso, split_page
from fastest.services.sync import snapshots

_WORKSPACE_COLUMNS = (
    "w.id, w.project_id, w.name, w.machine_id, w.local_path, w.base_snapshot_id, w.current_snapshot_id, "
    "w.current_manifest_hash, w.version, w.last_seen_at, w.created_at, w.updated_at"
)


def workspace_view(row: Mapping[str, Any], main_workspace_id: str | None) -> dict[str, Any]:
    view = {k: row[k] for k in (
        "id", "project_id", "name", "machine_id", "local_path", "base_snapshot_id", "current_snapshot_id",
        "current_manifest_hash", "version", "last_seen_at", "created_at", "updated_at",
    )}
    view["is_main"] = row["id"] == main_workspace_id
    return view


async def get_owned(platform: Platform, user_id: str, workspace_id: str) -> dict[str, Any]:
    """The workspace (plus its project's main_workspace_id) if this user owns it; otherwise 404."""
    row = await platform.db.prepare(
        f"SELECT {_WORKSPACE_COLUMNS}, p.main_workspace_id, p.user_id FROM workspaces w "
        "JOIN projects p ON p.id = w.project_id WHERE w.id = ? AND p.user_id = ?"
    ).bind(workspace_id, user_id).first()
    if row is None:
        raise NotFound("Workspace not found.")
    return row


async def create(
    platform: Platform,
    user_id: str,
    project_id: str,
    *,
    name: str,
    machine_id: str | None = None,
    base_snapshot_id: str | None = None,
    local_path: str | None = None,
) -> dict[str, Any]:
    """Create a workspace; the project's first workspace becomes its main one."""
    project = await projects.get_owned(platform, user_id, project_id)
    base_manifest = None
    if base_snapshot_id is not None:
        base = await snapshots.get_owned(platform, user_id, base_snapshot_id)
        if base["project_id"] != project_id:
            raise ValidationFailed(
                "The base snapshot must belong to this project.", code="parent_not_found",
                fields={"base_snapshot_id": "not a snapshot of this project"},
            )
        base_manifest = base["manifest_hash"]
    workspace_id = new_id(platform, "wsp")
    now = now_iso(platform)
    db = platform.db
    writes = [
        db.prepare(
            "INSERT INTO workspaces (id, project_id, name, machine_id, local_path, base_snapshot_id, "
            "current_snapshot_id, current_manifest_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ).bind(workspace_id, project_id, name, machine_id, local_path, base_snapshot_id, base_snapshot_id,
               base_manifest, now, now),
    ]
    if project["main_workspace_id"] is None:
        writes.append(
            db.prepare("UPDATE projects SET main_workspace_id = ? WHERE id = ? AND main_workspace_id IS NULL").bind(
                workspace_id, project_id
            )
        )
    writes += events.record(
        platform, project_id, user_id, "workspace.created", f"Created workspace {name}", {"workspace_id": workspace_id}
    )
    await db.batch(writes)
    return await view(platform, user_id, workspace_id)


async def view(platform: Platform, user_id: str, workspace_id: str) -> dict[str, Any]:
    row = await get_owned(platform, user_id, workspace_id)
    return workspace_view(row, row["main_workspace_id"])


async def list_for_project(platform: Platform, user_id: str, project_id: str) -> list[dict[str, Any]]:
    """Every workspace of the project, each with its latest drift report."""
    project = await projects.get_owned(platform, user_id, project_id)
    rows = (
        await platform.db.prepare(
            f"SELECT {_WORKSPACE_COLUMNS}, (SELECT json_object('id', d.id, 'files_added', d.files_added, "
            "'files_modified', d.files_modified, 'files_deleted', d.files_deleted, 'bytes_changed', d.bytes_changed, "
            "'summary', d.summary, 'details', json(d.details), 'source', d.source, 'created_at', d.created_at) "
            "FROM drift_reports d WHERE d.workspace_id = w.id ORDER BY d.seq DESC LIMIT 1) AS latest_drift "
            "FROM workspaces w WHERE w.project_id = ? ORDER BY w.rowid"
        ).bind(project_id).all()
    ).results
    listed = []
    for row in rows:
        item = workspace_view(row, project["main_workspace_id"])
        item["latest_drift"] = _drift_report_view(json.loads(row["latest_drift"])) if row["latest_drift"] else None
        listed.append(item)
    return listed


def _drift_report_view(row: Mapping[str, Any]) -> dict[str, Any]:
    details = row["details"]
    return {
        "id": row["id"],
        "files_added": row["files_added"],
        "files_modified": row["files_modified"],
        "files_deleted": row["files_deleted"],
        "bytes_changed": row["bytes_changed"],
        "summary": row["summary"],
        "source": row["source"],
        "created_at": row["created_at"],
        **(json.loads(details) if isinstance(details, str) else (details or {})),
    }


async def heartbeat(platform: Platform, user_id: str, workspace_id: str) -> str:
    """Mark the workspace as seen now. (Not a project event: clients send these every few minutes.)"""
    await get_owned(platform, user_id, workspace_id)
    now = now_iso(platform)
    await platform.db.prepare("UPDATE workspaces SET last_seen_at = ? WHERE id = ?").bind(now, workspace_id).run()
    return now


async def set_current_manifest(
    platform: Platform, user_id: str, workspace_id: str, *, manifest_hash: str, previous: str | None, check_previous: bool
) -> str:
    """Compare-and-set the workspace's current manifest: only if it still is `previous` (when given).

    The manifest must be one this user stored. On a lost race → 409 carrying the current hash."""
    workspace = await get_owned(platform, user_id, workspace_id)
    if not await storage.manifest_exists(platform, user_id, manifest_hash):
        raise ValidationFailed(
            "Upload the manifest before pointing a workspace at it.", code="manifest_missing",
            fields={"manifest_hash": "no such manifest"}, extra={"missing_manifests": [manifest_hash]},
        )
    now = now_iso(platform)
    update = "UPDATE workspaces SET current_manifest_hash = ?, version = version + 1, updated_at = ? WHERE id = ?"
    args: list[Any] = [manifest_hash, now, workspace_id]
    if check_previous:
        update += " AND current_manifest_hash IS ?"
        args.append(previous)
    results = await platform.db.batch(
        [
            platform.db.prepare(update).bind(*args),
            # The event only lands if the update did (same condition, evaluated after it).
            platform.db.prepare(
                "INSERT INTO project_events (id, project_id, actor, type, summary, data, created_at) "
                "SELECT ?, ?, ?, 'workspace.manifest_updated', ?, ?, ? WHERE changes() = 1"
            ).bind(
                new_id(platform, "evt"), workspace["project_id"], user_id, f"Workspace {workspace['name']} moved",
                dumps({"workspace_id": workspace_id, "manifest_hash": manifest_hash}), now,
            ),
        ]
    )
    if results[0].changes != 1:
        current = await platform.db.prepare("SELECT current_manifest_hash FROM workspaces WHERE id = ?").bind(
            workspace_id
        ).first("current_manifest_hash")
        raise Conflict(
            "The workspace's manifest changed since you read it.", code="conflict",
            extra={"updated": False, "conflict": True, "current_manifest_hash": current},
        )
    return manifest_hash


async def set_as_main(platform: Platform, user_id: str, workspace_id: str) -> str:
    workspace = await get_owned(platform, user_id, workspace_id)
    project_id = workspace["project_id"]
    await platform.db.batch(
        [
            platform.db.prepare("UPDATE projects SET main_workspace_id = ? WHERE id = ?").bind(workspace_id, project_id),
            *events.record(
                platform, project_id, user_id, "workspace.set_main", f"{workspace['name']} is now main",
                {"workspace_id": workspace_id, "previous": workspace["main_workspace_id"]},
            ),
        ]
    )
    return workspace_id


async def report_drift(
    platform: Platform, user_id: str, workspace_id: str, *, counts: Mapping[str, int], summary: str | None
) -> dict[str, Any]:
    """Record drift metrics the CLI computed."""
    await get_owned(platform, user_id, workspace_id)
    return await _insert_drift_report(platform, workspace_id, counts=counts, summary=summary, details={}, source="cli")


async def _insert_drift_report(
    platform: Platform, workspace_id: str, *, counts: Mapping[str, int], summary: str | None,
    details: Mapping[str, Any], source: str,
) -> dict[str, Any]:
    report_id = new_id(platform, "drf")
    await platform.db.prepare(
        "INSERT INTO drift_reports (id, workspace_id, files_added, files_modified, files_deleted, bytes_changed, "
        "summary, details, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ).bind(
        report_id, workspace_id, counts["files_added"], counts["files_modified"], counts["files_deleted"],
        counts["bytes_changed"], summary, dumps(dict(details)), source, now_iso(platform),
    ).run()
    row = await platform.db.prepare("SELECT * FROM drift_reports WHERE id = ?").bind(report_id).first()
    return _drift_report_view(row)


async def drift_history(
    platform: Platform, user_id: str, workspace_id: str, *, limit: int, before_seq: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    await get_owned(platform, user_id, workspace_id)
    where, args = ("AND seq < ?", [before_seq]) if before_seq is not None else ("", [])
    rows = (
        await platform.db.prepare(
            f"SELECT * FROM drift_reports WHERE workspace_id = ? {where} ORDER BY seq DESC LIMIT ?"
        ).bind(workspace_id, *args, limit + 1).all()
    ).results
    rows, next_cursor = split_page(rows, limit, lambda r: (r["seq"],))
    return [_drift_report_view(r) for r in rows], next_cursor


async def latest_drift(platform: Platform, workspace_id: str) -> dict[str, Any] | None:
    row = await platform.db.prepare(
        "SELECT * FROM drift_reports WHERE workspace_id = ? ORDER BY seq DESC LIMIT 1"
    ).bind(workspace_id).first()
    return _drift_report_view(row) if row else None


async def tree_of(platform: Platform, workspace: Mapping[str, Any], *, include_dirty: bool) -> str | None:
    """The manifest a workspace stands for: its current (dirty) manifest if asked and set, else its
    head snapshot's."""
    if include_dirty and workspace["current_manifest_hash"]:
        return workspace["current_manifest_hash"]
    return await snapshots.manifest_of(platform, workspace["current_snapshot_id"])


async def _created_at(platform: Platform, snapshot_id: str | None) -> datetime | None:
    if snapshot_id is None:
        return None
    value = await platform.db.prepare("SELECT created_at FROM snapshots WHERE id = ?").bind(snapshot_id).first("created_at")
    return parse_iso(value) if value else None


async def compare(
    platform: Platform, user_id: str, workspace_id: str, *, source_workspace_id: str | None, include_dirty: bool
) -> dict[str, Any]:
    """Drift of this workspace against another (default: the project's main), computed from the
    manifests in R2, and recorded as this workspace's latest drift report."""
    workspace = await get_owned(platform, user_id, workspace_id)
    source_id = source_workspace_id or workspace["main_workspace_id"]
    if source_id is None:
        raise ValidationFailed("The project has no main workspace to compare with.", code="no_main_workspace")
    source = await get_owned(platform, user_id, source_id)
    if source["project_id"] != workspace["project_id"]:
        raise NotFound("Workspace not found.")
    mine = await tree_of(platform, workspace, include_dirty=include_dirty)
    theirs = await tree_of(platform, source, include_dirty=include_dirty)
    summary = await drift.summarize_async(
        snapshots.changes_between(platform, user_id, theirs, mine),
        old_file_count=await storage.file_count(platform, user_id, theirs),
        new_file_count=await storage.file_count(platform, user_id, mine),
    )
    report = summary.to_json()
    report["staleness"] = drift.staleness(
        await _created_at(platform, workspace["base_snapshot_id"] or workspace["current_snapshot_id"]),
        await _created_at(platform, source["current_snapshot_id"]),
        platform.clock.now(),
    )
    report.update(workspace_id=workspace_id, source_workspace_id=source_id, workspace_manifest_hash=mine,
                  source_manifest_hash=theirs, include_dirty=include_dirty, compared_at=iso(platform.clock.now()))
    counts = {k: report[k] for k in ("files_added", "files_modified", "files_deleted", "bytes_changed")}
    details = {k: v for k, v in report.items() if k not in counts}
    await _insert_drift_report(platform, workspace_id, counts=counts, summary=None, details=details, source="compare")
    return {
        "drift": report,
        "is_main_workspace": workspace_id == workspace["main_workspace_id"],
        "source_workspace": workspace_view(source, source["main_workspace_id"]),
    }
