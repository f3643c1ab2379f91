"""The Atlas: a project's knowledge graph, built from a snapshot's tree — starting and stepping an
index, and reading the graph. The walk itself and what it writes are the `Indexer`'s
(`atlas_indexer`).

Bounded work: an index holds its pending directories in `atlas_indexes.state`; a request reads at
most `atlas_request_files` files and, if the tree is not done, answers 202 with progress; the rest
goes on in the background in steps of `atlas_step_files` (a deferred task locally, the cron job
`atlas-index` on the edge). Only when every directory is done are the imports resolved against the
tree's files, modules ranked by PageRank, and the directories recorded as indexed.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from fastest.domain.ids import iso
from fastest.errors import Conflict, NotFound
from fastest.platform import Platform
from fastest.services import projects
from fastest.services.common import now_iso, split_page
from fastest.services.intelligence.atlas_indexer import Indexer, embedder_for_user, embedder_model_id
from fastest.services.sync import snapshots

log = logging.getLogger(__name__)

LEASE_SECONDS = 120


# --------------------------------------------------------------------------------------------------
# Starting and stepping an index
# --------------------------------------------------------------------------------------------------


async def _target_snapshot(platform: Platform, user_id: str, project: dict[str, Any], snapshot_id: str | None) -> tuple[str | None, str]:
    if snapshot_id is not None:
        snapshot = await snapshots.get_owned(platform, user_id, snapshot_id)
        if snapshot["project_id"] != project["id"]:
            raise NotFound("Snapshot not found.")
        return snapshot_id, snapshot["manifest_hash"]
    row = await platform.db.prepare(
        "SELECT s.id, s.manifest_hash FROM projects p JOIN workspaces w ON w.id = p.main_workspace_id "
        "JOIN snapshots s ON s.id = w.current_snapshot_id WHERE p.id = ?"
    ).bind(project["id"]).first()
    if row is None:
        row = await platform.db.prepare(
            "SELECT id, manifest_hash FROM snapshots WHERE project_id = ? ORDER BY rowid DESC LIMIT 1"
        ).bind(project["id"]).first()
    if row is None:
        raise Conflict("The project has no snapshot to index yet: push one first.", code="no_snapshot")
    return row["id"], row["manifest_hash"]


async def start(platform: Platform, user_id: str, project_id: str, *, snapshot_id: str | None, embed: bool) -> tuple[int, dict[str, Any]]:
    """Start (or continue) indexing; run up to one request's worth of steps. (status, body)."""
    project = await projects.get_owned(platform, user_id, project_id)
    snapshot, root = await _target_snapshot(platform, user_id, project, snapshot_id)
    embed_model = ""
    if embed:
        embedder = await embedder_for_user(platform, user_id)
        if embedder is None:
            raise Conflict("No embedding model is available on this server (set FASTEST_AI_EMBEDDING_MODEL for an "
                           "OpenAI-compatible provider, or use Workers AI).", code="embeddings_not_configured")
        embed_model = embedder_model_id(embedder)
        if embedder.provider != "local":
            from fastest.services.ai import ai_budget

            await ai_budget.spend(platform, user_id)
    row = await _row(platform, project_id)
    now = now_iso(platform)
    if not (row and row["status"] == "running" and row["root_hash"] == root and bool(row["embed"]) == embed):
        state = {"stack": [["", root, ""]], "visited": [], "counts": _zero_counts(), "project_name": project["name"],
                 "paths_changed": False}
        await platform.db.prepare(
            "INSERT INTO atlas_indexes (project_id, user_id, snapshot_id, root_hash, status, embed, embed_model, state, "
            "result, error, lease_until, started_at, updated_at, completed_at) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?, ?, NULL, NULL, NULL, ?, ?, NULL) "
            "ON CONFLICT (project_id) DO UPDATE SET user_id = excluded.user_id, snapshot_id = excluded.snapshot_id, "
            "root_hash = excluded.root_hash, status = 'running', embed = excluded.embed, embed_model = excluded.embed_model, "
            "state = excluded.state, error = NULL, lease_until = NULL, started_at = excluded.started_at, "
            "updated_at = excluded.updated_at, completed_at = NULL"
        ).bind(project_id, user_id, snapshot, root, int(embed), embed_model, json.dumps(state), now, now).run()
    row = await step(platform, project_id, platform.settings.atlas_request_files)
    body = index_view(row)
    return (200 if row["status"] != "running" else 202), body


def _zero_counts() -> dict[str, int]:
    return {"files_read": 0, "manifests_read": 0, "files_reused": 0, "directories_reused": 0, "files_seen": 0,
            "parse_errors": 0, "concepts_created": 0, "edges_created": 0, "chunks_created": 0,
            "embeddings_created": 0, "files_removed": 0}


async def _row(platform: Platform, project_id: str) -> dict[str, Any] | None:
    return await platform.db.prepare("SELECT * FROM atlas_indexes WHERE project_id = ?").bind(project_id).first()


def index_view(row: dict[str, Any] | None) -> dict[str, Any]:
    """The answer of `POST …/atlas/index` and the `index` of `GET …/atlas`."""
    if row is None:
        return {"status": "none", "concepts_created": 0, "edges_created": 0, "chunks_created": 0, "embeddings_created": 0,
                "snapshot_id": None, "reused": {"directories": 0, "files": 0}, "progress": None}
    data = json.loads(row["state"] or row["result"] or "{}")
    counts = data.get("counts") or _zero_counts()
    pending = len(data.get("stack") or ()) if row["status"] == "running" else 0
    return {
        "status": row["status"],
        "snapshot_id": row["snapshot_id"],
        "concepts_created": counts["concepts_created"],
        "edges_created": counts["edges_created"],
        "chunks_created": counts["chunks_created"],
        "embeddings_created": counts["embeddings_created"],
        "reused": {"directories": counts["directories_reused"], "files": counts["files_reused"]},
        "read": {"files": counts["files_read"], "manifests": counts["manifests_read"]},
        "parse_errors": counts["parse_errors"],
        "parse_failures": data.get("parse_failures") or [],
        "embed_model": row["embed_model"] or None,
        "progress": {"files_done": counts["files_seen"], "directories_pending": pending,
                     "done": row["status"] != "running"},
        "error": row["error"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
    }


async def step(platform: Platform, project_id: str, file_budget: int) -> dict[str, Any]:
    """Do up to `file_budget` files of a running index (finishing it when the tree is done); the row after."""
    now = platform.clock.now()
    claimed = await platform.db.prepare(
        "UPDATE atlas_indexes SET lease_until = ? WHERE project_id = ? AND status = 'running' "
        "AND (lease_until IS NULL OR lease_until < ?) RETURNING *"
    ).bind(iso(now + timedelta(seconds=LEASE_SECONDS)), project_id, iso(now)).first()
    if claimed is None:
        return await _row(platform, project_id) or {}
    state = json.loads(claimed["state"])
    try:
        indexer = Indexer(platform, claimed, state)
        done = await indexer.run(file_budget)
        if done:
            await indexer.finish()
            result = {"counts": state["counts"], "parse_failures": state.get("parse_failures", [])}
            await platform.db.prepare(
                "UPDATE atlas_indexes SET status = 'ready', state = NULL, result = ?, lease_until = NULL, updated_at = ?, "
                "completed_at = ? WHERE project_id = ?"
            ).bind(json.dumps(result), now_iso(platform), now_iso(platform), project_id).run()
        else:
            await platform.db.prepare(
                "UPDATE atlas_indexes SET state = ?, lease_until = NULL, updated_at = ? WHERE project_id = ?"
            ).bind(json.dumps(state), now_iso(platform), project_id).run()
    except Exception as exc:
        log.exception("Atlas index of %s failed", project_id)
        await platform.db.prepare(
            "UPDATE atlas_indexes SET status = 'failed', error = ?, lease_until = NULL, updated_at = ? WHERE project_id = ?"
        ).bind(f"{type(exc).__name__}: {str(exc)[:300]}", now_iso(platform), project_id).run()
    return await _row(platform, project_id) or {}


async def run_to_end(platform: Platform, project_id: str) -> dict[str, Any]:
    """Steps until the index is no longer running (a deferred local task after a 202)."""
    row = await _row(platform, project_id) or {}
    guard = 0
    while row.get("status") == "running" and guard < 10_000:
        row = await step(platform, project_id, platform.settings.atlas_step_files)
        guard += 1
        if row.get("status") == "running" and row.get("lease_until"):
            break  # someone else holds it
    return row


async def continue_all(platform: Platform) -> int:
    """The cron job: one step of every running index (oldest first); how many were stepped."""
    rows = (await platform.db.prepare(
        "SELECT project_id FROM atlas_indexes WHERE status = 'running' ORDER BY updated_at LIMIT 20"
    ).all()).results
    for row in rows:
        await step(platform, row["project_id"], platform.settings.atlas_step_files)
    return len(rows)


# --------------------------------------------------------------------------------------------------
# Reading the graph
# --------------------------------------------------------------------------------------------------


def concept_view(row: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(row.get("data") or "{}")
    view = {
        "id": row["id"], "layer": row["layer"], "kind": row["kind"], "name": row["name"], "path": row["path"],
        "description": row["description"], "start_line": row["start_line"], "end_line": row["end_line"],
        "parent_id": row["parent_id"], "rank": row["rank"],
    }
    if row["layer"] == "module":
        view["language"] = data.get("language")
        view["parse_error"] = data.get("parse_error")
    elif row["layer"] == "code":
        view["signature"] = data.get("signature", "")
        view["signatures"] = data.get("signatures") or ([view["signature"]] if view["signature"] else [])
        view["exported"] = data.get("exported", True)
    return view


async def graph(platform: Platform, user_id: str, project_id: str, *, layer: str | None, after: int | None,
                limit: int) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    sql = "SELECT * FROM atlas_concepts WHERE project_id = ?"
    params: list[Any] = [project_id]
    if layer:
        sql += " AND layer = ?"
        params.append(layer)
    if after is not None:
        sql += " AND seq > ?"
        params.append(after)
    rows = (await platform.db.prepare(sql + " ORDER BY seq LIMIT ?").bind(*params, limit + 1).all()).results
    rows, next_cursor = split_page(rows, limit, lambda row: (row["seq"],))
    ids = [r["id"] for r in rows]
    edges = []
    if ids:
        listed = json.dumps(ids)
        edges = (await platform.db.prepare(
            "SELECT e.source_id, e.target_id, e.kind FROM json_each(?) j CROSS JOIN atlas_edges e "
            "ON e.source_id = j.value WHERE e.project_id = ? UNION "
            "SELECT e.source_id, e.target_id, e.kind FROM json_each(?) j CROSS JOIN atlas_edges e "
            "ON e.target_id = j.value WHERE e.project_id = ? AND e.kind = 'decided_by' ORDER BY 3, 1, 2"
        ).bind(listed, project_id, listed, project_id).all()).results
    return {
        "concepts": [concept_view(r) for r in rows],
        "edges": [{"source_id": e["source_id"], "target_id": e["target_id"], "kind": e["kind"]} for e in edges],
        "next_cursor": next_cursor,
        "index": index_view(await _row(platform, project_id)),
    }


async def index_status(platform: Platform, user_id: str, project_id: str) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    return index_view(await _row(platform, project_id))
