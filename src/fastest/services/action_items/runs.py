"""Runs: a background agent turn that fixes one action item on a copy of the workspace's files,
and applying its result.

A run is a row in D1 (what the API reads) and a `ConversationSession` object named `run:<id>`
(what does the work: `durable_objects.runs`). `start` records the row, gives the object its
context (the workspace's tree as the base of its working tree, so the agent edits an overlay, never
the workspace) and the task, and returns at once; the object's alarm runs the attempts, and the
object writes the row as it goes through `mark_running` / `finish` here.

`evaluate` turns an attempt's overlay into the run's result: the unified diff, and the checks
(every changed file still parses; the item's own analysis no longer fires on the result tree).

`apply` makes the result a new snapshot of the workspace by compare-and-set on its version; if the
workspace moved since the run started, the run's change is three-way merged onto it (base: the
run's base tree, ours: the workspace now, theirs: the run's result), text files both sides changed
line by line; what still conflicts answers 409 with the paths and changes nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from fastest.domain import patches
from fastest.domain.manifest import sha256_hex
from fastest.domain.merge import is_text, merge_mode, merge_text, merge_trees
from fastest.domain.parse_checks import check_parses
from fastest.domain.tree import EMPTY_TREE_HASH, FileRecord, find
from fastest.errors import Conflict, NotFound, ValidationFailed
from fastest.platform import Platform
from fastest.ports import ConstraintError, SessionRequest
from fastest.services import events, storage
from fastest.services.action_items import items as action_items
from fastest.services.ai import models
from fastest.services.common import dumps, new_id, now_iso
from fastest.services.sync import snapshots, workspaces

log = logging.getLogger("fastest.action_item_runs")

MAX_ATTEMPTS = 3
PATCH_MAX_BYTES = 1024 * 1024  # a run's patch is one D1 value (rows hold at most 2 MB)
ACTIVE = ("queued", "running")


def session_name(run_id: str) -> str:
    return f"run:{run_id}"


def run_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "action_item_id": row["action_item_id"], "workspace_id": row["workspace_id"],
        "project_id": row["project_id"], "status": row["status"], "attempt_count": row["attempt_count"],
        "max_attempts": row["max_attempts"], "summary": row["summary"], "report": row["report"],
        "patch": row["patch"], "checks": json.loads(row["checks"] or "[]"),
        "error": json.loads(row["error"]) if row["error"] else None,
        "base_snapshot_id": row["base_snapshot_id"], "base_manifest_hash": row["base_manifest_hash"],
        "applied_snapshot_id": row["applied_snapshot_id"], "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


async def _row(platform: Platform, user_id: str, run_id: str) -> dict[str, Any]:
    row = await platform.db.prepare(
        "SELECT r.* FROM action_item_runs r JOIN projects p ON p.id = r.project_id WHERE r.id = ? AND r.user_id = ? AND p.user_id = ?"
    ).bind(run_id, user_id, user_id).first()
    if row is None:
        raise NotFound("Run not found.")
    return row


async def get(platform: Platform, user_id: str, run_id: str) -> dict[str, Any]:
    return run_view(await _row(platform, user_id, run_id))


async def list_for_item(platform: Platform, user_id: str, item_id: str) -> list[dict[str, Any]]:
    rows = (await platform.db.prepare(
        "SELECT r.* FROM action_item_runs r JOIN projects p ON p.id = r.project_id "
        "WHERE r.user_id = ? AND p.user_id = ? AND r.action_item_id = ? ORDER BY r.created_at DESC, r.id DESC LIMIT 100"
    ).bind(user_id, user_id, item_id).all()).results
    if not rows:
        await action_items.get_item(platform, user_id, item_id)  # 404 for an unknown (or another user's) item
    return [run_view(row) for row in rows]


def task_prompt(item: Mapping[str, Any], instructions: str | None) -> str:
    """The item as the agent's task."""
    data = {k: v for k, v in item["action_data"].items() if k != "secrets"}
    lines = [
        f"Fix this finding in the workspace's files: {item['title']}.",
        item["description"],
        f"Details: {json.dumps(data, ensure_ascii=False)[:4000]}",
        "Use the file tools to read and change the files; change only what the fix needs. No user is "
        "watching this run: do not ask questions, decide sensibly and explain the choice in your last message. "
        "End with a short summary of what you changed (first line) and why.",
    ]
    if item["type"] == "secrets":
        lines.insert(2, "Replace each hard-coded secret with a read from an environment variable (keep the "
                        "variable names obvious); never write the secret anywhere else.")
    if instructions:
        lines.append(f"The user adds: {instructions}")
    return "\n\n".join(lines)


async def agent_available(platform: Platform, user_id: str) -> bool:
    """Whether a run can fix anything for this user: a model is configured (or their own key reaches
    one). Without one, a run fails at once with `model_not_configured`, so clients offer none."""
    return models.is_model(await models.for_user(platform, user_id))


async def start(platform: Platform, user_id: str, item_id: str, *, instructions: str | None) -> dict[str, Any]:
    item = await action_items.get_item(platform, user_id, item_id)
    if item["type"] not in action_items.RUNNABLE_KINDS:
        raise ValidationFailed(
            f"A {item['type']} item is not fixed by a run: {item['action_label'].lower()} instead.", code="item_not_runnable",
        )
    active = await platform.db.prepare(
        "SELECT id FROM action_item_runs WHERE user_id = ? AND action_item_id = ? AND status IN ('queued', 'running')"
    ).bind(user_id, item_id).first("id")
    if active is not None:
        raise Conflict("A run for this item is already in progress.", code="run_in_progress", extra={"run_id": active})
    workspace = await workspaces.get_owned(platform, user_id, item["workspace_id"])
    base = await workspaces.tree_of(platform, workspace, include_dirty=True)
    run_id = new_id(platform, "run")
    now = now_iso(platform)
    await platform.db.prepare(
        "INSERT INTO action_item_runs (id, user_id, action_item_id, project_id, workspace_id, item, base_snapshot_id, "
        "base_manifest_hash, status, attempt_count, max_attempts, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)"
    ).bind(run_id, user_id, item_id, workspace["project_id"], workspace["id"], dumps(item), workspace["current_snapshot_id"],
           base, MAX_ATTEMPTS, now, now).run()
    stub = platform.sessions.get(session_name(run_id))
    context = {"conversation_id": run_id, "user_id": user_id, "project_id": workspace["project_id"],
               "workspace_id": workspace["id"], "manifest_hash": base}
    try:
        await _call(stub, "PUT", "/context", context)
        await _call(stub, "POST", "/run/start", {
            "run_id": run_id, "item": item, "prompt": task_prompt(item, instructions), "max_attempts": MAX_ATTEMPTS,
        })
    except Exception:
        # The object never got the run: fail the row rather than leave it queued with nothing behind it.
        log.exception("run %s could not be handed to its session object", run_id)
        await finish_failed(platform, run_id, {"code": "start_failed", "message": "The run could not be started; try again."})
    return await get(platform, user_id, run_id)


async def _call(stub: Any, method: str, path: str, body: Any) -> dict[str, Any]:
    response = await stub.fetch(SessionRequest(method=method, path=path, body=json.dumps(body).encode(),
                                               headers={"content-type": "application/json"}))
    payload = json.loads(response.body or b"{}")
    if response.status >= 400:
        raise RuntimeError(f"run session answered {response.status}: {payload}")
    return payload


# --------------------------------------------------------------------------------------------------
# Written by the run's session object as the run goes
# --------------------------------------------------------------------------------------------------


async def mark_running(platform: Platform, run_id: str, attempt: int) -> None:
    await platform.db.prepare(
        "UPDATE action_item_runs SET status = 'running', attempt_count = ?, error = NULL, updated_at = ? "
        "WHERE id = ? AND status IN ('queued', 'running')"
    ).bind(attempt, now_iso(platform), run_id).run()


async def note_retry(platform: Platform, run_id: str, error: Mapping[str, Any], checks: list[dict[str, Any]] | None = None) -> None:
    """An attempt failed and another will follow: the row says why, while staying `running`."""
    await platform.db.prepare(
        "UPDATE action_item_runs SET error = ?, checks = ?, updated_at = ? WHERE id = ? AND status IN ('queued', 'running')"
    ).bind(dumps(dict(error)), dumps(checks or []), now_iso(platform), run_id).run()


async def finish_failed(platform: Platform, run_id: str, error: Mapping[str, Any], *, checks: list[dict[str, Any]] | None = None,
                        report: str | None = None) -> None:
    await platform.db.prepare(
        "UPDATE action_item_runs SET status = 'failed', error = ?, checks = ?, report = COALESCE(?, report), updated_at = ? "
        "WHERE id = ? AND status IN ('queued', 'running')"
    ).bind(dumps(dict(error)), dumps(checks or []), report, now_iso(platform), run_id).run()


async def finish_ready(platform: Platform, run_id: str, result: Mapping[str, Any]) -> None:
    """The run is `ready`, and the project event `action_item.run.ready` is recorded in the same
    batch (the integration webhooks fan it out)."""
    row = await platform.db.prepare("SELECT * FROM action_item_runs WHERE id = ?").bind(run_id).first()
    if row is None or row["status"] not in ACTIVE:
        return
    now = now_iso(platform)
    await platform.db.batch([
        platform.db.prepare(
            "UPDATE action_item_runs SET status = 'ready', summary = ?, report = ?, patch = ?, checks = ?, changes = ?, "
            "result_manifest_hash = ?, error = NULL, updated_at = ? WHERE id = ? AND status IN ('queued', 'running')"
        ).bind(result["summary"], result["report"], result["patch"], dumps(result["checks"]), dumps(result["changes"]),
               result["result_manifest_hash"], now, run_id),
        *events.record(
            platform, row["project_id"], row["user_id"], "action_item.run.ready", f"Run {run_id} is ready to review",
            {"run_id": run_id, "action_item_id": row["action_item_id"], "workspace_id": row["workspace_id"],
             "files_changed": len(result["changes"])},
        ),
    ])


# --------------------------------------------------------------------------------------------------
# Evaluating an attempt: patch and checks
# --------------------------------------------------------------------------------------------------


async def _file_bytes(platform: Platform, user_id: str, root: str | None, path: str) -> tuple[bytes | None, int | None]:
    if root is None:
        return None, None
    entry = await find(root, path, storage.manifest_loader(platform, user_id))
    if entry is None or entry.type != "file":
        return None, None
    return await storage.read_blob(platform, user_id, entry.hash), entry.mode


async def evaluate(platform: Platform, user_id: str, item: Mapping[str, Any], base: str | None,
                   overlay: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The result of an attempt whose working tree is `base` + `overlay`: the patch, the checks
    (`ok` on each), the result tree (stored, so applying only moves pointers), and the changes."""
    from fastest.services.conversations.working_tree import as_changes

    checks: list[dict[str, Any]] = []
    diffs: list[tuple[str, bytes | None, bytes | None]] = []
    changes: dict[str, Any] = {}
    for path in sorted(overlay):
        change = overlay[path]
        old, _ = await _file_bytes(platform, user_id, base, path)
        new = None if change.get("deleted") else await storage.read_blob(platform, user_id, change["hash"])
        if old == new:
            continue
        changes[path] = dict(change)
        diffs.append((path, old, new))
        if new is not None:
            problem = check_parses(path, new)
            checks.append({"name": "parses", "path": path, "ok": problem is None, "detail": problem})
    if not changes:
        return {"changes": {}, "checks": [{"name": "changed", "path": None, "ok": False, "detail": "The agent changed no file."}],
                "patch": "", "result_manifest_hash": base}
    try:
        patch = patches.unified_patch(diffs)
    except patches.NotText as exc:
        patch = ""
        checks.append({"name": "patch", "path": None, "ok": False, "detail": f"A change cannot be shown as a text patch: {exc}."})
    if len(patch.encode("utf-8")) > PATCH_MAX_BYTES:
        checks.append({"name": "patch", "path": None, "ok": False, "detail": f"The patch is larger than {PATCH_MAX_BYTES} bytes."})
    root = await storage.store_changed_tree(platform, user_id, base or EMPTY_TREE_HASH, as_changes(changes))
    fired = await _still_fires(platform, user_id, item, root)
    checks.append({"name": "finding_resolved", "path": None, "ok": not fired,
                   "detail": None if not fired else f"The finding still fires on the result: {fired}"})
    return {"changes": changes, "checks": checks, "patch": patch, "result_manifest_hash": root}


async def _still_fires(platform: Platform, user_id: str, item: Mapping[str, Any], root: str) -> str | None:
    """The item's own analysis on the result tree: its title if it still fires, else None."""
    for finding in await action_items.analyze_tree(platform, user_id, root):
        if finding.fingerprint(item["workspace_id"]) == item["fingerprint"]:
            return finding.title
    return None


def report_of(item: Mapping[str, Any], answer: str, result: Mapping[str, Any], attempt: int) -> str:
    lines = [f"# {item['title']}", "", f"Attempt {attempt}. The agent's account:", "", answer.strip() or "(no message)", "",
             "## Files changed", ""]
    for path, change in result["changes"].items():
        lines.append(f"- `{path}` ({'deleted' if change.get('deleted') else str(change['size']) + ' bytes'})")
    lines += ["", "## Checks", ""]
    for check in result["checks"]:
        where = f" `{check['path']}`" if check.get("path") else ""
        lines.append(f"- {'pass' if check['ok'] else 'FAIL'}: {check['name']}{where}{': ' + check['detail'] if check.get('detail') else ''}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------------------


async def apply(platform: Platform, user_id: str, run_id: str) -> dict[str, Any]:
    row = await _row(platform, user_id, run_id)
    if row["status"] == "applied":
        raise Conflict("This run was already applied.", code="run_already_applied", extra={"snapshot_id": row["applied_snapshot_id"]})
    if row["status"] != "ready":
        raise Conflict(f"Only a ready run can be applied; this one is {row['status']}.", code="run_not_ready")
    workspace = await workspaces.get_owned(platform, user_id, row["workspace_id"])
    base = row["base_manifest_hash"]
    result_root = row["result_manifest_hash"]
    ours = await workspaces.tree_of(platform, workspace, include_dirty=True)
    merged = (ours or None) != (base or None)
    if not merged:
        new_root = result_root
    else:
        new_root = await _merge_onto(platform, user_id, base, ours or EMPTY_TREE_HASH, result_root)
    await storage.verify_closure(platform, user_id, new_root)
    snapshot_id = new_id(platform, "snp")
    now = now_iso(platform)
    item = json.loads(row["item"])
    parents = [workspace["current_snapshot_id"]] if workspace["current_snapshot_id"] else []
    db = platform.db
    batch = [
        # Compare-and-set on the workspace's version; the run's update right after it is guarded by
        # `changes()`: a lost race sets NULL, which the NOT NULL status refuses, failing the whole
        # batch (no snapshot, no event). Two applies of one run cannot both win: each moves the version.
        db.prepare(
            "UPDATE workspaces SET current_snapshot_id = ?, current_manifest_hash = ?, version = version + 1, "
            "updated_at = ? WHERE id = ? AND version = ?"
        ).bind(snapshot_id, new_root, now, workspace["id"], workspace["version"]),
        db.prepare(
            "UPDATE action_item_runs SET status = CASE WHEN changes() = 1 THEN 'applied' END, applied_snapshot_id = ?, "
            "updated_at = ? WHERE id = ?"
        ).bind(snapshot_id, now, run_id),
        *snapshots.insert_statements(
            platform, snapshot_id=snapshot_id, project_id=workspace["project_id"], workspace_id=workspace["id"],
            manifest_hash=new_root, parent_ids=parents, source="agent",
            summary=(row["summary"] or f"Fix: {item['title']}")[:2000], move_workspace=False,
        ),
        *events.record(
            platform, workspace["project_id"], user_id, "action_item.run.applied", f"Applied run {run_id}: {item['title']}",
            {"run_id": run_id, "action_item_id": row["action_item_id"], "workspace_id": workspace["id"],
             "snapshot_id": snapshot_id, "merged": merged},
        ),
    ]
    try:
        await db.batch(batch)
    except ConstraintError:
        raise Conflict("The workspace changed while the run was applied; nothing was changed. Apply again.",
                       code="workspace_changed") from None
    refreshed = await workspaces.get_owned(platform, user_id, workspace["id"])
    try:
        await action_items.analyze_workspace(platform, user_id, refreshed)
    except Exception:
        log.exception("re-analysis after applying run %s failed", run_id)
    return {"success": True, "run": await get(platform, user_id, run_id), "snapshot_id": snapshot_id,
            "manifest_hash": new_root, "merged": merged}


async def _merge_onto(platform: Platform, user_id: str, base: str | None, ours: str, theirs: str) -> str:
    """The run's change (base → theirs) three-way merged onto the workspace now (ours); 409 with
    the paths that conflict."""
    load = storage.manifest_loader(platform, user_id)
    result = await merge_trees(base, ours, theirs, load)
    updates: dict[str, FileRecord | None] = dict(result.updates)
    blobs: dict[str, bytes] = {}
    conflicted: list[str] = []
    for conflict in result.conflicts:
        if conflict.kind == "modify/modify" and all(e is not None and e.type == "file" for e in (conflict.base, conflict.ours, conflict.theirs)):
            versions = [await storage.read_blob(platform, user_id, e.hash) for e in (conflict.base, conflict.ours, conflict.theirs)]
            if all(is_text(v) for v in versions):
                merged_text = merge_text(*versions)
                if merged_text.clean:
                    digest = sha256_hex(merged_text.content)
                    blobs[digest] = merged_text.content
                    mode = merge_mode(conflict.base.mode, conflict.ours.mode, conflict.theirs.mode) or conflict.ours.mode
                    updates[conflict.path] = (conflict.path, digest, len(merged_text.content), mode)
                    continue
        conflicted.append(conflict.path)
    if conflicted:
        raise Conflict("The workspace changed the same lines as the run; nothing was applied.", code="apply_conflict",
                       extra={"paths": sorted(conflicted)})
    if blobs:
        await storage.store_objects(platform, user_id, blobs=blobs)
    if not updates:
        return ours
    return await storage.store_changed_tree(platform, user_id, ours, updates)
