"""Snapshots: immutable points in a project's history, each naming a root manifest, joined into a
DAG by their parents (a parent always exists before its child, so cycles cannot be built).

Creating one checks the root manifest's closure once (every manifest and blob it reaches exists),
so a snapshot never names data the server does not have. Creation is idempotent on `snapshot_id`.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Mapping

from fastest.domain import drift, tree
from fastest.domain.ids import has_prefix
from fastest.errors import Conflict, NotFound, ValidationFailed
from fastest.platform import Platform
from fastest.ports import ConstraintError, Statement
from fastest.services import events, projects, storage
from fastest.services.common import new_id, now_iso, split_page
from fastest.services.sync import analysis_queue

MAX_PARENTS = 8
CHANGE_LIST_LIMIT = 1000

# Parent ids in position order, as a JSON array, for any query over `snapshots s`.
_PARENTS_SQL = (
    "(SELECT json_group_array(parent_id) FROM (SELECT parent_id FROM snapshot_parents p "
    "WHERE p.snapshot_id = s.id ORDER BY position)) AS parent_ids"
)
_SNAPSHOT_SELECT = f"SELECT s.*, {_PARENTS_SQL} FROM snapshots s"


def snapshot_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project_id": row["project_id"],
        "workspace_id": row["workspace_id"],
        "manifest_hash": row["manifest_hash"],
        "parent_snapshot_ids": json.loads(row["parent_ids"] or "[]"),
        "source": row["source"],
        "summary": row["summary"],
        "created_at": row["created_at"],
    }


async def get_owned(platform: Platform, user_id: str, snapshot_id: str) -> dict[str, Any]:
    """The snapshot if it belongs to one of this user's projects; otherwise 404."""
    row = await platform.db.prepare(
        f"{_SNAPSHOT_SELECT} JOIN projects p ON p.id = s.project_id WHERE s.id = ? AND p.user_id = ?"
    ).bind(snapshot_id, user_id).first()
    if row is None:
        raise NotFound("Snapshot not found.")
    return snapshot_view(row)


async def manifest_of(platform: Platform, snapshot_id: str | None) -> str | None:
    """The root manifest of a snapshot (None for no snapshot)."""
    if snapshot_id is None:
        return None
    return await platform.db.prepare("SELECT manifest_hash FROM snapshots WHERE id = ?").bind(snapshot_id).first(
        "manifest_hash"
    )


async def _in_project(platform: Platform, project_id: str, snapshot_id: str) -> dict[str, Any] | None:
    row = await platform.db.prepare(f"{_SNAPSHOT_SELECT} WHERE s.id = ? AND s.project_id = ?").bind(
        snapshot_id, project_id
    ).first()
    return snapshot_view(row) if row else None


def insert_statements(
    platform: Platform,
    *,
    snapshot_id: str,
    project_id: str,
    workspace_id: str | None,
    manifest_hash: str,
    parent_ids: list[str],
    source: str,
    summary: str | None,
    move_workspace: bool = True,
) -> list[Statement]:
    """The writes that record a snapshot and move the heads it belongs to (for one batch).
    `move_workspace=False`: the caller moves the workspace itself (by compare-and-set)."""
    db = platform.db
    now = now_iso(platform)
    statements = [
        db.prepare(
            "INSERT INTO snapshots (id, project_id, workspace_id, manifest_hash, source, summary, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        ).bind(snapshot_id, project_id, workspace_id, manifest_hash, source, summary, now),
        *[
            db.prepare("INSERT INTO snapshot_parents (snapshot_id, parent_id, position) VALUES (?, ?, ?)").bind(
                snapshot_id, parent_id, position
            )
            for position, parent_id in enumerate(parent_ids)
        ],
        db.prepare("UPDATE projects SET last_snapshot_id = ? WHERE id = ?").bind(snapshot_id, project_id),
    ]
    if workspace_id is not None:  # its tree moved: queue it for the action-item analyses
        statements.append(analysis_queue.queue_statement(platform, workspace_id, now))
    if workspace_id is not None and move_workspace:
        statements.append(
            db.prepare(
                "UPDATE workspaces SET current_snapshot_id = ?, version = version + 1, updated_at = ? WHERE id = ?"
            ).bind(snapshot_id, now, workspace_id)
        )
    return statements


async def create(
    platform: Platform,
    user_id: str,
    project_id: str,
    *,
    manifest_hash: str,
    snapshot_id: str | None = None,
    parent_ids: list[str] | None = None,
    workspace_id: str | None = None,
    source: str = "cli",
    summary: str | None = None,
    move_workspace: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Record a snapshot; returns (snapshot, created). A repeated `snapshot_id` returns the first one.
    With a `workspace_id` the snapshot becomes that workspace's head, unless `move_workspace=False`."""
    await projects.get_owned(platform, user_id, project_id)
    parent_ids = list(parent_ids or [])
    if snapshot_id is not None:
        if not has_prefix(snapshot_id, "snp"):
            raise ValidationFailed("A snapshot id is `snp_` and 26 base32 characters.", fields={"snapshot_id": "invalid id"})
        existing = await _existing_for_retry(platform, project_id, snapshot_id, manifest_hash)
        if existing is not None:
            return existing, False
    if len(parent_ids) != len(set(parent_ids)) or len(parent_ids) > MAX_PARENTS:
        raise ValidationFailed(
            f"Up to {MAX_PARENTS} distinct parents.", fields={"parent_snapshot_ids": "duplicates or too many"}
        )
    for index, parent_id in enumerate(parent_ids):
        if await _in_project(platform, project_id, parent_id) is None:
            raise ValidationFailed(
                "A parent snapshot must belong to this project.",
                code="parent_not_found",
                fields={f"parent_snapshot_ids.{index}": "not a snapshot of this project"},
            )
    if workspace_id is not None:
        await _require_workspace_in_project(platform, project_id, workspace_id)
    await storage.verify_closure(platform, user_id, manifest_hash)

    snapshot_id = snapshot_id or new_id(platform, "snp")
    writes = insert_statements(
        platform, snapshot_id=snapshot_id, project_id=project_id, workspace_id=workspace_id,
        manifest_hash=manifest_hash, parent_ids=parent_ids, source=source, summary=summary,
        move_workspace=move_workspace,
    )
    event = events.record(
        platform, project_id, user_id, "snapshot.created", f"Snapshot {snapshot_id} ({source})",
        {"snapshot_id": snapshot_id, "manifest_hash": manifest_hash, "workspace_id": workspace_id},
    )
    try:
        await platform.db.batch([*writes, *event])
    except ConstraintError:
        # A concurrent retry with the same snapshot_id won the race: answer as a retry.
        existing = await _existing_for_retry(platform, project_id, snapshot_id, manifest_hash)
        if existing is None:
            raise
        return existing, False
    if workspace_id is not None and move_workspace:
        await events.after_commit(platform, events.Event(
            events.WORKSPACE_MOVED, project_id, user_id,
            {"workspace_id": workspace_id, "snapshot_id": snapshot_id, "manifest_hash": manifest_hash},
        ))
    return await get_owned(platform, user_id, snapshot_id), True


async def _existing_for_retry(
    platform: Platform, project_id: str, snapshot_id: str, manifest_hash: str
) -> dict[str, Any] | None:
    row = await platform.db.prepare(f"{_SNAPSHOT_SELECT} WHERE s.id = ?").bind(snapshot_id).first()
    if row is None:
        return None
    if row["project_id"] != project_id or row["manifest_hash"] != manifest_hash:
        raise Conflict("This snapshot_id is already used for a different snapshot.", code="snapshot_id_taken")
    return snapshot_view(row)


async def _require_workspace_in_project(platform: Platform, project_id: str, workspace_id: str) -> None:
    found = await platform.db.prepare("SELECT 1 AS found FROM workspaces WHERE id = ? AND project_id = ?").bind(
        workspace_id, project_id
    ).first()
    if found is None:
        raise ValidationFailed(
            "The workspace must belong to this project.", code="workspace_not_found",
            fields={"workspace_id": "not a workspace of this project"},
        )


async def _page(
    platform: Platform, where: str, value: str, *, limit: int, before: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paginated on insertion order (rowid): timestamps tie within a millisecond."""
    after, args = ("AND s.rowid < ?", [before]) if before is not None else ("", [])
    stmt = platform.db.prepare(
        f"SELECT s.rowid AS position, s.*, {_PARENTS_SQL} FROM snapshots s WHERE s.{where} = ? {after} "
        "ORDER BY s.rowid DESC LIMIT ?"
    ).bind(value, *args, limit + 1)
    rows, next_cursor = split_page((await stmt.all()).results, limit, lambda r: (r["position"],))
    return [snapshot_view(r) for r in rows], next_cursor


async def list_for_project(
    platform: Platform, user_id: str, project_id: str, *, limit: int, before: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    await projects.get_owned(platform, user_id, project_id)
    return await _page(platform, "project_id", project_id, limit=limit, before=before)


async def list_for_workspace(
    platform: Platform, workspace_id: str, *, limit: int, before: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """(The caller has checked the workspace belongs to the user.)"""
    return await _page(platform, "workspace_id", workspace_id, limit=limit, before=before)


async def changes_between(
    platform: Platform, user_id: str, old_root: str | None, new_root: str | None
) -> AsyncIterator[tree.Change]:
    """File-level changes from one tree to another, reading only the manifests on changed paths."""
    async for change in tree.diff(old_root, new_root, storage.manifest_loader(platform, user_id)):
        yield change


async def compare(platform: Platform, user_id: str, snapshot_id: str, against: str) -> dict[str, Any]:
    """What changed from `against` (a snapshot id, or "current": the workspace's current state) to
    this snapshot."""
    snapshot = await get_owned(platform, user_id, snapshot_id)
    if against == "current":
        if snapshot["workspace_id"] is None:
            raise ValidationFailed("This snapshot has no workspace to compare with.", fields={"against": "no workspace"})
        row = await platform.db.prepare(
            "SELECT w.current_manifest_hash, s.manifest_hash AS head_manifest FROM workspaces w "
            "LEFT JOIN snapshots s ON s.id = w.current_snapshot_id WHERE w.id = ?"
        ).bind(snapshot["workspace_id"]).first()
        base_manifest = row["current_manifest_hash"] or row["head_manifest"]
    else:
        other = await get_owned(platform, user_id, against)
        if other["project_id"] != snapshot["project_id"]:
            raise ValidationFailed("Compare snapshots of the same project.", fields={"against": "another project"})
        base_manifest = other["manifest_hash"]
    summary = await drift.summarize_async(
        changes_between(platform, user_id, base_manifest, snapshot["manifest_hash"]),
        old_file_count=await storage.file_count(platform, user_id, base_manifest),
        new_file_count=await storage.file_count(platform, user_id, snapshot["manifest_hash"]),
        path_limit=CHANGE_LIST_LIMIT,
    )
    return {
        "snapshot_id": snapshot_id,
        "against": against,
        "base_manifest_hash": base_manifest,
        "target_manifest_hash": snapshot["manifest_hash"],
        "diff": summary.to_json(),
    }


async def restore(platform: Platform, user_id: str, snapshot_id: str, *, workspace_id: str | None) -> dict[str, Any]:
    """Set a workspace back to a snapshot's files, never losing where it was.

    First a "before restore" snapshot records the workspace's current state (its current manifest,
    or its head); then a new head snapshot with the restored manifest is added on top of it, so the
    history stays a DAG that only grows, and an undo is just another restore.
    """
    target = await get_owned(platform, user_id, snapshot_id)
    workspace_id = workspace_id or target["workspace_id"]
    if workspace_id is None:
        raise ValidationFailed("Say which workspace to restore into.", fields={"workspace_id": "required"})
    workspace = await platform.db.prepare(
        "SELECT w.*, s.manifest_hash AS head_manifest FROM workspaces w LEFT JOIN snapshots s "
        "ON s.id = w.current_snapshot_id WHERE w.id = ? AND w.project_id = ?"
    ).bind(workspace_id, target["project_id"]).first()
    if workspace is None:
        raise ValidationFailed(
            "The workspace must belong to the snapshot's project.", code="workspace_not_found",
            fields={"workspace_id": "not a workspace of this project"},
        )
    project_id = target["project_id"]
    current_manifest = workspace["current_manifest_hash"] or workspace["head_manifest"]
    head = workspace["current_snapshot_id"]
    writes: list[Statement] = []
    before_id = None
    parents = [head] if head else []
    if current_manifest is not None:
        before_id = new_id(platform, "snp")
        writes += insert_statements(
            platform, snapshot_id=before_id, project_id=project_id, workspace_id=workspace_id,
            manifest_hash=current_manifest, parent_ids=parents, source="restore_checkpoint",
            summary=f"Before restoring {snapshot_id}",
        )
        parents = [before_id]
    restored_id = new_id(platform, "snp")
    writes += insert_statements(
        platform, snapshot_id=restored_id, project_id=project_id, workspace_id=workspace_id,
        manifest_hash=target["manifest_hash"], parent_ids=parents, source="restore", summary=f"Restored {snapshot_id}",
    )
    writes.append(
        platform.db.prepare("UPDATE workspaces SET current_manifest_hash = ? WHERE id = ?").bind(
            target["manifest_hash"], workspace_id
        )
    )
    writes += events.record(
        platform, project_id, user_id, "snapshot.restored", f"Restored {snapshot_id} into {workspace['name']}",
        {"snapshot_id": snapshot_id, "workspace_id": workspace_id, "before_restore_snapshot_id": before_id,
         "new_snapshot_id": restored_id},
    )
    await platform.db.batch(writes)
    await events.after_commit(platform, events.Event(
        events.WORKSPACE_MOVED, project_id, user_id,
        {"workspace_id": workspace_id, "snapshot_id": restored_id, "manifest_hash": target["manifest_hash"]},
    ))
    return {
        "success": True,
        "snapshot": await get_owned(platform, user_id, restored_id),
        "before_restore_snapshot_id": before_id,
        "restored_from": snapshot_id,
        "workspace_id": workspace_id,
    }
