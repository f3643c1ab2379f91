"""Projects: the top of a user's tree (workspaces, snapshots, events and env vars hang off it).

Every lookup is scoped by user: another user's project is indistinguishable from a missing one (404).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from fastest.errors import Conflict, NotFound
from fastest.platform import Platform
from fastest.ports import ConstraintError
from fastest.services import events
from fastest.services.common import new_id, now_iso, split_page

RECENT_SNAPSHOTS = 10
RECENT_EVENTS = 20
BRIEF_FIELDS = frozenset({"intent", "brief"})

_PROJECT_COLUMNS = (
    "id, user_id, name, intent, brief, main_workspace_id, last_snapshot_id, created_at, updated_at, last_activity_at"
)


_PROJECT_KEYS = tuple(column.strip() for column in _PROJECT_COLUMNS.split(","))


def project_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in _PROJECT_KEYS}


async def get_owned(platform: Platform, user_id: str, project_id: str) -> dict[str, Any]:
    """The project if this user owns it; otherwise 404 (whether or not it exists)."""
    row = await platform.db.prepare(
        f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ? AND user_id = ?"
    ).bind(project_id, user_id).first()
    if row is None:
        raise NotFound("Project not found.")
    return row


def _duplicate_name(name: str) -> Conflict:
    return Conflict(f"You already have a project named {name!r}.", code="project_name_taken", fields={"name": "taken"})


async def create(platform: Platform, user_id: str, name: str) -> dict[str, Any]:
    project_id = new_id(platform, "prj")
    now = now_iso(platform)
    insert = platform.db.prepare(
        "INSERT INTO projects (id, user_id, name, created_at, updated_at, last_activity_at) VALUES (?, ?, ?, ?, ?, ?)"
    ).bind(project_id, user_id, name, now, now, now)
    try:
        await platform.db.batch(
            [insert, *events.record(platform, project_id, user_id, "project.created", f"Created project {name}")]
        )
    except ConstraintError as exc:
        raise _duplicate_name(name) from exc
    return project_view(await get_owned(platform, user_id, project_id))


async def list_page(
    platform: Platform, user_id: str, *, limit: int, after: tuple[str, str] | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Most recently updated first; the cursor is the (updated_at, id) of the last row returned."""
    if after is None:
        stmt = platform.db.prepare(
            f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE user_id = ? "
            "ORDER BY updated_at DESC, id DESC LIMIT ?"
        ).bind(user_id, limit + 1)
    else:
        stmt = platform.db.prepare(
            f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE user_id = ? AND (updated_at, id) < (?, ?) "
            "ORDER BY updated_at DESC, id DESC LIMIT ?"
        ).bind(user_id, after[0], after[1], limit + 1)
    rows, next_cursor = split_page((await stmt.all()).results, limit, lambda r: (r["updated_at"], r["id"]))
    return [project_view(r) for r in rows], next_cursor


async def detail(platform: Platform, user_id: str, project_id: str) -> dict[str, Any]:
    project = project_view(await get_owned(platform, user_id, project_id))
    db = platform.db
    workspaces, snapshots, recent_events, insights = await db.batch(
        [
            db.prepare("SELECT * FROM workspaces WHERE project_id = ? ORDER BY rowid").bind(project_id),
            db.prepare(
                "SELECT s.*, (SELECT json_group_array(parent_id) FROM "
                "(SELECT parent_id FROM snapshot_parents p WHERE p.snapshot_id = s.id ORDER BY position)) "
                "AS parent_ids FROM snapshots s WHERE s.project_id = ? ORDER BY s.rowid DESC LIMIT ?"
            ).bind(project_id, RECENT_SNAPSHOTS),
            db.prepare("SELECT * FROM project_events WHERE project_id = ? ORDER BY seq DESC LIMIT ?").bind(
                project_id, RECENT_EVENTS
            ),
            db.prepare(
                "SELECT COUNT(*) AS total, MAX(created_at) AS last_snapshot_at, "
                "MAX(CASE WHEN source IN ('sync', 'merge') THEN created_at END) AS last_merge_at, "
                # The last deployment that went live, else a snapshot recorded as a deploy.
                "COALESCE((SELECT MAX(completed_at) FROM deployments WHERE project_id = ? AND status = 'ready'), "
                "MAX(CASE WHEN source = 'deploy' THEN created_at END)) AS last_deploy_at FROM snapshots "
                "WHERE project_id = ?"
            ).bind(project_id, project_id),
        ]
    )
    stats = insights.results[0]
    since_merge = await _count_since(platform, project_id, stats["last_merge_at"])
    since_deploy = await _count_since(platform, project_id, stats["last_deploy_at"])
    return {
        "project": project,
        "workspaces": workspaces.results,
        "snapshots": [_snapshot_view(r) for r in snapshots.results],
        "events": [events.event_view(r) for r in recent_events.results],
        "snapshot_insights": {
            "total_snapshots": stats["total"],
            "last_snapshot_at": stats["last_snapshot_at"],
            "last_merge_at": stats["last_merge_at"],
            "snapshots_since_merge": since_merge,
            "last_deploy_at": stats["last_deploy_at"],
            "snapshots_since_deploy": since_deploy,
        },
    }


async def _count_since(platform: Platform, project_id: str, moment: str | None) -> int:
    stmt = platform.db.prepare(
        "SELECT COUNT(*) AS n FROM snapshots WHERE project_id = ? AND created_at > ?"
    ).bind(project_id, moment or "")
    return int(await stmt.first("n"))


def _snapshot_view(row: Mapping[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in row.items() if k != "parent_ids"}
    view["parent_snapshot_ids"] = json.loads(row["parent_ids"] or "[]")
    return view


async def rename(platform: Platform, user_id: str, project_id: str, name: str) -> dict[str, Any]:
    current = await get_owned(platform, user_id, project_id)
    if current["name"] != name:
        update = platform.db.prepare("UPDATE projects SET name = ? WHERE id = ? AND user_id = ?").bind(
            name, project_id, user_id
        )
        try:
            await platform.db.batch(
                [
                    update,
                    *events.record(
                        platform, project_id, user_id, "project.renamed", f"Renamed project to {name}",
                        {"from": current["name"], "to": name},
                    ),
                ]
            )
        except ConstraintError as exc:
            raise _duplicate_name(name) from exc
    return project_view(await get_owned(platform, user_id, project_id))


async def delete(platform: Platform, user_id: str, project_id: str) -> None:
    """Delete the project and, by foreign-key cascade, its workspaces, snapshots, events and env vars.

    Blobs and manifests are user-scoped and shared between projects: GC reclaims the unreachable ones.
    """
    await get_owned(platform, user_id, project_id)
    await platform.db.prepare("DELETE FROM projects WHERE id = ? AND user_id = ?").bind(project_id, user_id).run()


async def status(platform: Platform, user_id: str, project_id: str) -> dict[str, Any]:
    project = await get_owned(platform, user_id, project_id)
    return {
        "last_snapshot_id": project["last_snapshot_id"],
        "updated_at": project["updated_at"],
        "last_activity": project["last_activity_at"],
    }


async def brief(platform: Platform, user_id: str, project_id: str) -> dict[str, Any]:
    project = await get_owned(platform, user_id, project_id)
    return {"id": project["id"], "intent": project["intent"], "brief": project["brief"]}


async def update_brief(platform: Platform, user_id: str, project_id: str, changes: Mapping[str, str | None]) -> None:
    """Set `intent` and/or `brief` (only the keys given; None clears)."""
    if not set(changes) <= BRIEF_FIELDS:
        raise ValueError(f"only {sorted(BRIEF_FIELDS)} can be changed here")
    await get_owned(platform, user_id, project_id)
    if not changes:
        return
    assignments = ", ".join(f"{column} = ?" for column in changes)  # columns checked against BRIEF_FIELDS
    update = platform.db.prepare(f"UPDATE projects SET {assignments} WHERE id = ? AND user_id = ?").bind(
        *changes.values(), project_id, user_id
    )
    await platform.db.batch(
        [
            update,
            *events.record(
                platform, project_id, user_id, "project.brief_updated", "Updated " + " and ".join(sorted(changes)),
                {"fields": sorted(changes)},
            ),
        ]
    )


async def events_page(
    platform: Platform, user_id: str, project_id: str, *, limit: int, before_seq: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    await get_owned(platform, user_id, project_id)
    return await events.page(platform, project_id, limit=limit, before_seq=before_seq)
