"""Sync: merge main into a workspace — prepare a preview, execute it, undo it (docs/DESIGN.md §5).

*Ours* is the workspace's current tree (its current manifest, else its head snapshot's), *theirs*
is main's, *base* the tree of the merge base of their head snapshots in the DAG.

prepare  merges the trees (`domain.merge`), line-merges text files both sides changed, asks the AI
         port for a combination where lines still collide, turns what is left into decisions
         (`domain.sync_plan`), and keeps the preview in KV for 30 minutes. Merged and combined
         blobs are stored right away: content-addressed, harmless if never used (GC's grace period
         outlives the preview), and execute then only builds manifests.
execute  checks the answers, rebuilds the workspace's tree with every change (reading only the
         directories on changed paths), stores the new manifests, then in ONE D1 batch: moves the
         workspace by compare-and-set on its version, records the sync run (the guard that fails
         the batch when the compare-and-set lost), a "before sync" snapshot when the workspace had
         unsnapshotted changes, and the merge snapshot whose parents are both heads.
undo     points the workspace back at the last sync's pre-sync snapshot, by the same kind of batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from fastest.domain import dag, sync_plan
from fastest.domain.ids import iso
from fastest.domain.manifest import sha256_hex
from fastest.domain.merge import Conflict as MergeConflict
from fastest.domain.merge import (
    is_text,
    mass_change,
    merge_mode,
    merge_text,
    merge_trees,
)
from fastest.domain.tree import EMPTY_TREE_HASH, FileRecord, find, walk
from fastest.errors import AIRateLimited, Conflict, Gone, NotFound, ValidationFailed
from fastest.platform import Platform
from fastest.ports import AIModel, ConstraintError, Statement
from fastest.services import events, storage
from fastest.services.ai import ai_budget, models
from fastest.services.common import new_id, now_iso
from fastest.services.sync import snapshots, workspaces
from fastest.templates import render

log = logging.getLogger(__name__)

PREVIEW_TTL_SECONDS = 30 * 60
TEXT_MERGE_MAX_BYTES = 1024 * 1024  # larger files both sides changed are decided, not line-merged
AI_MAX_FILE_BYTES = 64 * 1024  # each version of a file sent to the AI port
AI_MAX_FILES = 8  # AI combinations tried per prepare (each is a model call)
PATH_LIST_LIMIT = 1000  # paths listed per category in a preview; counts are always complete


def _preview_key(user_id: str, workspace_id: str, preview_id: str) -> str:
    return f"sync-preview:{user_id}:{workspace_id}:{preview_id}"


# --------------------------------------------------------------------------------------------------
# Reading the two sides
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Side:
    workspace_id: str
    snapshot_id: str | None
    manifest_hash: str  # EMPTY_TREE_HASH for a workspace with nothing yet
    version: int


async def _side(platform: Platform, row: Mapping[str, Any]) -> _Side:
    tree = await workspaces.tree_of(platform, row, include_dirty=True)
    return _Side(row["id"], row["current_snapshot_id"], tree or EMPTY_TREE_HASH, row["version"])


async def sync_sides(platform: Platform, user_id: str, workspace_id: str) -> tuple[Mapping[str, Any], _Side, _Side]:
    workspace = await workspaces.get_owned(platform, user_id, workspace_id)
    main_id = workspace["main_workspace_id"]
    if main_id is None:
        raise Conflict("The project has no main workspace to sync with.", code="no_main_workspace")
    if main_id == workspace_id:
        raise Conflict("This is the project's main workspace; sync another workspace with it.", code="sync_with_itself")
    main = await workspaces.get_owned(platform, user_id, main_id)
    return workspace, await _side(platform, workspace), await _side(platform, main)


async def merge_base(platform: Platform, project_id: str, ours: _Side, theirs: _Side) -> tuple[str | None, str | None]:
    """(merge base snapshot id, its manifest): None, None when the heads share no history."""
    if ours.snapshot_id is None or theirs.snapshot_id is None:
        return None, None

    async def load_parents(ids: list[str]) -> dict[str, list[str]]:
        rows = (await platform.db.prepare(
            "SELECT p.snapshot_id, p.parent_id FROM snapshot_parents p JOIN snapshots s ON s.id = p.snapshot_id "
            "WHERE s.project_id = ? AND p.snapshot_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY p.snapshot_id, p.position"
        ).bind(project_id, json.dumps(ids)).all()).results
        parents: dict[str, list[str]] = {}
        for row in rows:
            parents.setdefault(row["snapshot_id"], []).append(row["parent_id"])
        return parents

    base_id = await dag.merge_base_lazy(ours.snapshot_id, theirs.snapshot_id, load_parents)
    if base_id is None:
        return None, None
    return base_id, await snapshots.manifest_of(platform, base_id)


# --------------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """A preview being built."""

    auto: dict[str, FileRecord | None]
    auto_actions: list[dict[str, Any]]
    decisions: list[sync_plan.Decision]
    new_blobs: dict[str, bytes]
    workspace_paths: set[str]  # the changed paths the workspace has a file at (the rest are additions)
    ai_tried: int = 0
    ai_offered: int = 0
    ai_refused: int = 0
    ai_budget_spent: bool = False
    model: AIModel | None = None


async def _ai_model(platform: Platform, user_id: str) -> AIModel | None:
    """The model this user's conflicts go to (with their own key for its provider when stored);
    None with the builtin engine: no model, so no `ai_combined` option."""
    model = await models.for_user(platform, user_id)
    return model if models.is_model(model) else None


def _ai_status(model: AIModel | None, plan: _Plan) -> dict[str, Any]:
    if model is None:
        return {
            "engine": "builtin", "available": False, "offered": 0,
            "message": "No AI model is configured on this server, so no ai_combined option is offered; "
                       "conflicts are yours to decide (FASTEST_AI_PROVIDER and FASTEST_AI_MODEL configure one).",
        }
    message = f"The AI model proposed {plan.ai_offered} combination(s) for {plan.ai_tried} conflicting file(s)"
    if plan.ai_refused:
        message += f"; {plan.ai_refused} proposal(s) were refused by the checks"
    if plan.ai_budget_spent:
        message += "; the AI budget is spent, so the other conflicts were not sent"
    return {"engine": f"{getattr(model, 'provider', 'model')}:{getattr(model, 'model', '')}", "available": True,
            "offered": plan.ai_offered, "message": message + "."}


async def prepare(platform: Platform, user_id: str, workspace_id: str) -> dict[str, Any]:
    workspace, ours, theirs = await sync_sides(platform, user_id, workspace_id)
    project_id = workspace["project_id"]
    base_id, base_manifest = await merge_base(platform, project_id, ours, theirs)
    load = storage.manifest_loader(platform, user_id)
    result = await merge_trees(base_manifest, ours.manifest_hash, theirs.manifest_hash, load)

    plan = _Plan(auto=dict(result.updates), auto_actions=[], decisions=[], new_blobs={},
                 workspace_paths=set(result.updates.keys() - result.new_paths),
                 model=await _ai_model(platform, user_id) if result.conflicts else None)
    for path, record in result.updates.items():
        action = "delete" if record is None else "add" if path in result.new_paths else "update"
        plan.auto_actions.append({"path": path, "action": action, "source": "main"})
    for conflict in result.conflicts:
        await _settle(platform, user_id, conflict, ours, theirs, plan)
    if plan.new_blobs:
        await storage.store_objects(platform, user_id, blobs=plan.new_blobs)

    ours_files = await storage.file_count(platform, user_id, ours.manifest_hash)
    preview_id = new_id(platform, "syp")
    now = platform.clock.now()
    stored = {
        "id": preview_id,
        "workspace_id": workspace_id,
        "project_id": project_id,
        "created_at": iso(now),
        "expires_at": iso(now + timedelta(seconds=PREVIEW_TTL_SECONDS)),
        "workspace": {"snapshot_id": ours.snapshot_id, "manifest_hash": ours.manifest_hash, "version": ours.version,
                      "file_count": ours_files},
        "main": {"workspace_id": theirs.workspace_id, "snapshot_id": theirs.snapshot_id,
                 "manifest_hash": theirs.manifest_hash, "version": theirs.version},
        "base": {"snapshot_id": base_id, "manifest_hash": base_manifest},
        "auto": {path: list(record) if record else None for path, record in plan.auto.items()},
        "auto_actions": plan.auto_actions,
        "decisions": [decision.to_json() for decision in plan.decisions],
        "renames": [{"side": "workspace" if r.side == "ours" else "main", "from": r.old_path, "to": r.new_path}
                    for r in result.renames],
        "identical": result.identical,
        "workspace_paths": sorted(plan.workspace_paths),
        "ai": _ai_status(plan.model, plan),
    }
    await platform.kv.put(_preview_key(user_id, workspace_id, preview_id), json.dumps(stored),
                          expiration_ttl=PREVIEW_TTL_SECONDS)
    return preview_view(platform, stored)


async def _settle(platform: Platform, user_id: str, conflict: MergeConflict, ours: _Side, theirs: _Side,
                  plan: _Plan) -> None:
    """Resolve one conflict by a line merge if it is clean; otherwise make it a decision."""
    both_files = conflict.ours is not None and conflict.theirs is not None \
        and conflict.ours.type == "file" and conflict.theirs.type == "file"
    texts = None
    binary = False
    if both_files and conflict.kind in ("modify/modify", "add/add"):
        texts = await read_versions(platform, user_id, conflict)
        binary = texts is None or not all(is_text(t) for t in texts)
    if conflict.kind == "modify/modify" and texts is not None and not binary:
        merged = merge_text(*texts)
        mode = merge_mode(conflict.base.mode, conflict.ours.mode, conflict.theirs.mode)  # type: ignore[union-attr]
        if merged.clean and merged.content is not None and mode is not None:
            digest = sha256_hex(merged.content)
            plan.new_blobs[digest] = merged.content
            plan.auto[conflict.path] = (conflict.path, digest, len(merged.content), mode)
            plan.auto_actions.append({"path": conflict.path, "action": "merge", "source": "both"})
            plan.workspace_paths.add(conflict.path)
            return
    combined = None
    if texts is not None and not binary:
        combined = await _ai_combination(platform, user_id, conflict, texts, plan)
    ours_files = await _files_under(platform, user_id, conflict.path, conflict.ours)
    theirs_files = await _files_under(platform, user_id, conflict.path, conflict.theirs)
    plan.workspace_paths.update(record[0] for record in ours_files)
    if conflict.ours is not None and conflict.ours.type == "file":
        plan.workspace_paths.add(conflict.path)
    copy_path = None
    if conflict.ours is not None and conflict.theirs is not None:
        copy_path = await _free_copy_path(platform, user_id, conflict.path, ours.manifest_hash, theirs.manifest_hash, plan)
    plan.decisions.append(sync_plan.decision_for(
        conflict, ours_files=ours_files, theirs_files=theirs_files, copy_path=copy_path, combined=combined,
        binary=binary,
    ))


async def read_versions(platform: Platform, user_id: str, conflict: MergeConflict) -> tuple[bytes, bytes, bytes] | None:
    """The base, workspace and main bytes of a file both sides changed; None if one is too large to merge."""
    entries = (conflict.base if conflict.base is not None and conflict.base.type == "file" else None,
               conflict.ours, conflict.theirs)
    if any(e is not None and (e.size or 0) > TEXT_MERGE_MAX_BYTES for e in entries):
        return None
    versions = []
    for entry in entries:
        versions.append(b"" if entry is None else await storage.read_blob(platform, user_id, entry.hash,
                                                                         max_bytes=TEXT_MERGE_MAX_BYTES))
    return versions[0], versions[1], versions[2]


async def _files_under(platform: Platform, user_id: str, path: str, entry) -> list[FileRecord]:
    """The files of a side that is a directory at `path` (full paths); [] for a file or nothing."""
    if entry is None or entry.type != "tree":
        return []
    return [(f"{path}/{sub}", e.hash, e.size, e.mode) async for sub, e in walk(entry.hash, storage.manifest_loader(platform, user_id))]


async def _free_copy_path(platform: Platform, user_id: str, path: str, ours_root: str, theirs_root: str,
                          plan: _Plan) -> str:
    load = storage.manifest_loader(platform, user_id)
    taken: set[str] = set()
    candidate = sync_plan.conflict_copy_path(path, lambda p: p in taken)
    # Each candidate costs two lookups along its path; a free one is nearly always the first.
    while (await find(ours_root, candidate, load) is not None or await find(theirs_root, candidate, load) is not None
           or candidate in plan.auto):
        taken.add(candidate)
        candidate = sync_plan.conflict_copy_path(path, lambda p: p in taken)
    return candidate


async def _ai_combination(platform: Platform, user_id: str, conflict: MergeConflict,
                          texts: tuple[bytes, bytes, bytes], plan: _Plan) -> FileRecord | None:
    """Ask the AI port to combine both versions; keep the proposal only if it passes the checks.
    Each call spends one unit of the user's AI budget; once it is spent, no more are asked."""
    model = plan.model
    if model is None or plan.ai_budget_spent or plan.ai_tried >= AI_MAX_FILES \
            or any(len(t) > AI_MAX_FILE_BYTES for t in texts):
        return None
    try:
        await ai_budget.spend(platform, user_id)
    except AIRateLimited:
        plan.ai_budget_spent = True
        return None
    plan.ai_tried += 1
    extension = conflict.path.rsplit(".", 1)[-1].upper() if "." in conflict.path.rsplit("/", 1)[-1] else ""
    prompt = render("merge_combine.txt", path=conflict.path, base=texts[0].decode(), ours=texts[1].decode(),
                    theirs=texts[2].decode(), format=extension if extension in ("JSON", "TOML", "YAML", "YML") else "")
    try:
        answer = await model.complete([{"role": "user", "content": prompt}], temperature=0)
        proposal = sync_plan.strip_code_fence(str(answer.get("content") or "")).encode("utf-8")
    except Exception as exc:  # a model failure only means no AI option for this file
        log.warning("AI combination for a sync conflict failed: %s", type(exc).__name__)
        plan.ai_refused += 1
        return None
    refusal = sync_plan.accept_combination(conflict.path, proposal) if proposal.strip() else "empty"
    if refusal is not None:
        plan.ai_refused += 1
        return None
    digest = sha256_hex(proposal)
    plan.new_blobs[digest] = proposal
    plan.ai_offered += 1
    mode = conflict.ours.mode  # type: ignore[union-attr]
    return (conflict.path, digest, len(proposal), mode)


def _limited(paths: list[str]) -> list[str]:
    return paths[:PATH_LIST_LIMIT]


def preview_view(platform: Platform, stored: Mapping[str, Any]) -> dict[str, Any]:
    """The preview as the API shows it: no change records, options by id and description."""
    auto_actions = stored["auto_actions"]
    by_action: dict[str, list[str]] = {"add": [], "update": [], "delete": [], "merge": []}
    for action in auto_actions:
        by_action[action["action"]].append(action["path"])
    decisions = [
        {"path": d["path"], "kind": d["kind"], "reason": d["reason"],
         "options": [{"id": o["id"], "description": o["description"]} for o in d["options"]]}
        for d in stored["decisions"]
    ]
    auto_counts = {"files_added": len(by_action["add"]), "files_deleted": len(by_action["delete"]),
                   "files_updated": len(by_action["update"]) + len(by_action["merge"])}
    needs_confirmation = needs_mass_change_confirmation(platform, stored["workspace"]["file_count"], auto_counts)
    return {
        "id": stored["id"],
        "workspace_id": stored["workspace_id"],
        "created_at": stored["created_at"],
        "expires_at": stored["expires_at"],
        "base_snapshot_id": stored["base"]["snapshot_id"],
        "workspace_snapshot_id": stored["workspace"]["snapshot_id"],
        "main_snapshot_id": stored["main"]["snapshot_id"],
        "main_workspace_id": stored["main"]["workspace_id"],
        "auto_actions": auto_actions[:PATH_LIST_LIMIT],
        "decisions_needed": decisions,
        "files_to_update": _limited(by_action["update"] + by_action["merge"]),
        "files_to_add": _limited(by_action["add"]),
        "files_to_delete": _limited(by_action["delete"]),
        "renames": stored["renames"][:PATH_LIST_LIMIT],
        "summary": {
            "up_to_date": not auto_actions and not decisions,
            "auto": len(auto_actions),
            "decisions": len(decisions),
            "files_to_update": len(by_action["update"]) + len(by_action["merge"]),
            "files_to_add": len(by_action["add"]),
            "files_to_delete": len(by_action["delete"]),
            "line_merged": len(by_action["merge"]),
            "identical": stored["identical"],
            "renames": len(stored["renames"]),
            "requires_mass_change_confirmation": needs_confirmation,
        },
        "ai": stored["ai"],
    }


# --------------------------------------------------------------------------------------------------
# execute
# --------------------------------------------------------------------------------------------------


async def _load_preview(platform: Platform, user_id: str, workspace_id: str, preview_id: str) -> dict[str, Any]:
    raw = await platform.kv.get(_preview_key(user_id, workspace_id, preview_id))
    if raw is None:
        raise Gone("The sync preview expired or does not exist; prepare the sync again.", code="preview_expired")
    return json.loads(raw)


async def execute(
    platform: Platform,
    user_id: str,
    workspace_id: str,
    *,
    preview_id: str,
    decisions: Mapping[str, str],
    create_snapshot_before: bool = False,
    confirm_mass_change: bool = False,
    summary: str | None = None,
) -> dict[str, Any]:
    workspace = await workspaces.get_owned(platform, user_id, workspace_id)
    stored = await _load_preview(platform, user_id, workspace_id, preview_id)
    plan_decisions = [sync_plan.Decision.from_json(d) for d in stored["decisions"]]
    auto = {path: tuple(record) if record else None for path, record in stored["auto"].items()}
    try:
        changes = sync_plan.chosen_changes(auto, plan_decisions, decisions)  # type: ignore[arg-type]
    except sync_plan.UnansweredDecisions as exc:
        raise ValidationFailed(
            "Answer every decision of the preview with one of its options.", code="decisions_invalid",
            fields={f"decisions.{path}": problem for path, problem in exc.problems.items()},
        ) from None
    ours = stored["workspace"]
    if await _already_executed(platform, preview_id):
        raise Conflict("This sync preview was already executed.", code="preview_already_executed")
    if workspace["version"] != ours["version"]:
        await _record_failure(platform, user_id, workspace, "workspace_changed")
        raise Conflict("The workspace changed since the preview; prepare the sync again.", code="workspace_changed",
                       extra={"version": workspace["version"]})
    main = await workspaces.get_owned(platform, user_id, stored["main"]["workspace_id"])
    if main["version"] != stored["main"]["version"] or workspace["main_workspace_id"] != main["id"]:
        await _record_failure(platform, user_id, workspace, "main_changed")
        raise Conflict("Main changed since the preview; prepare the sync again.", code="main_changed")
    counts = _counts(changes, set(stored["workspace_paths"]))
    if not confirm_mass_change and needs_mass_change_confirmation(platform, ours["file_count"], counts):
        raise ValidationFailed(
            "This sync would delete or replace most of the workspace's files; send confirm_mass_change: true "
            "to go ahead.", code="mass_change_unconfirmed", fields={"confirm_mass_change": "required for this sync"},
            extra=counts,
        )

    if not changes and ours["manifest_hash"] == stored["main"]["manifest_hash"]:
        new_root = ours["manifest_hash"]
    else:
        new_root = await storage.store_changed_tree(platform, user_id, ours["manifest_hash"], changes)
    await storage.verify_closure(platform, user_id, new_root)

    project_id = workspace["project_id"]
    head_manifest = await snapshots.manifest_of(platform, ours["snapshot_id"])
    writes: list[Statement] = []
    pre_sync_id = ours["snapshot_id"]
    if pre_sync_id is None or head_manifest != ours["manifest_hash"] or create_snapshot_before:
        pre_sync_id = new_id(platform, "snp")
        writes += snapshots.insert_statements(
            platform, snapshot_id=pre_sync_id, project_id=project_id, workspace_id=workspace_id,
            manifest_hash=ours["manifest_hash"], parent_ids=[ours["snapshot_id"]] if ours["snapshot_id"] else [],
            source="sync", summary="Before sync with main", move_workspace=False,
        )
    merge_id = new_id(platform, "snp")
    parents = [pre_sync_id] + ([stored["main"]["snapshot_id"]] if stored["main"]["snapshot_id"] else [])
    writes += snapshots.insert_statements(
        platform, snapshot_id=merge_id, project_id=project_id, workspace_id=workspace_id, manifest_hash=new_root,
        parent_ids=parents, source="merge", summary=summary or "Sync with main", move_workspace=False,
    )
    run_id = new_id(platform, "syn")
    now = now_iso(platform)
    db = platform.db
    batch = [
        # The compare-and-set, then the guard that fails the whole batch if it lost (see migration 0005).
        _move_workspace(platform, workspace_id, merge_id, new_root, expected_version=ours["version"], now=now),
        db.prepare(
            "INSERT INTO sync_runs (id, workspace_id, preview_id, pre_sync_snapshot_id, merge_snapshot_id, "
            "main_snapshot_id, manifest_hash, created_at) VALUES (?, ?, ?, CASE WHEN changes() = 1 THEN ? END, ?, ?, ?, ?)"
        ).bind(run_id, workspace_id, preview_id, pre_sync_id, merge_id, stored["main"]["snapshot_id"], new_root, now),
        *writes,
        *events.record(
            platform, project_id, user_id, "workspace.synced", f"Workspace {workspace['name']} synced with main",
            {"workspace_id": workspace_id, "sync_id": run_id, "snapshot_id": merge_id, "pre_sync_snapshot_id": pre_sync_id,
             **counts},
        ),
    ]
    try:
        await db.batch(batch)
    except ConstraintError:
        if await _already_executed(platform, preview_id):
            raise Conflict("This sync preview was already executed.", code="preview_already_executed") from None
        await _record_failure(platform, user_id, workspace, "workspace_changed")
        raise Conflict("The workspace changed while the sync ran; nothing was changed. Prepare the sync again.",
                       code="workspace_changed") from None
    await events.after_commit(platform, events.Event(
        events.WORKSPACE_MOVED, project_id, user_id,
        {"workspace_id": workspace_id, "snapshot_id": merge_id, "manifest_hash": new_root},
    ))
    return {
        "success": True,
        "sync_id": run_id,
        "snapshot_id": merge_id,
        "manifest_hash": new_root,
        "pre_sync_snapshot_id": pre_sync_id,
        **counts,
    }


async def _record_failure(platform: Platform, user_id: str, workspace: Mapping[str, Any], code: str) -> None:
    """Log a sync that failed (nothing else changed): the action items show the workspace's failed
    last sync until a sync succeeds."""
    await platform.db.batch(events.record(
        platform, workspace["project_id"], user_id, "workspace.sync_failed", f"Sync of {workspace['name']} failed ({code})",
        {"workspace_id": workspace["id"], "code": code}, touch=False,
    ))


def _counts(changes: Mapping[str, FileRecord | None], workspace_paths: set[str]) -> dict[str, int]:
    """Files added/updated/deleted in the workspace by these changes."""
    deleted = sum(1 for record in changes.values() if record is None)
    updated = sum(1 for path, record in changes.items() if record is not None and path in workspace_paths)
    return {"files_added": len(changes) - deleted - updated, "files_updated": updated, "files_deleted": deleted}


def needs_mass_change_confirmation(platform: Platform, file_count: int, counts: Mapping[str, int]) -> bool:
    """The safety valve (DESIGN §5): deleting or replacing more than the configured share of the
    workspace's files (FASTEST_SYNC_MASS_CHANGE_PERCENT, default 50), or emptying it."""
    share = min(max(platform.settings.sync_mass_change_percent, 1), 100) / 100
    return mass_change(file_count, counts["files_deleted"] + counts["files_updated"], threshold=share,
                       result_file_count=file_count - counts["files_deleted"] + counts["files_added"])


def _move_workspace(platform: Platform, workspace_id: str, snapshot_id: str, manifest_hash: str, *,
                    expected_version: int, now: str) -> Statement:
    """Point the workspace at a snapshot and its tree if its version is still `expected_version`."""
    return platform.db.prepare(
        "UPDATE workspaces SET current_snapshot_id = ?, current_manifest_hash = ?, version = version + 1, "
        "updated_at = ? WHERE id = ? AND version = ?"
    ).bind(snapshot_id, manifest_hash, now, workspace_id, expected_version)


async def _already_executed(platform: Platform, preview_id: str) -> bool:
    return await platform.db.prepare("SELECT 1 AS found FROM sync_runs WHERE preview_id = ?").bind(preview_id).first() is not None


# --------------------------------------------------------------------------------------------------
# undo
# --------------------------------------------------------------------------------------------------


async def undo(platform: Platform, user_id: str, workspace_id: str, *, force: bool = False) -> dict[str, Any]:
    workspace = await workspaces.get_owned(platform, user_id, workspace_id)
    run = await platform.db.prepare(
        "SELECT r.* FROM sync_runs r LEFT JOIN sync_undos u ON u.sync_run_id = r.id "
        "WHERE r.workspace_id = ? AND u.id IS NULL ORDER BY r.created_at DESC, r.rowid DESC LIMIT 1"
    ).bind(workspace_id).first()
    if run is None:
        raise Conflict("There is no sync of this workspace to undo.", code="nothing_to_undo")
    current = workspace["current_manifest_hash"]
    moved = workspace["current_snapshot_id"] != run["merge_snapshot_id"] or current != run["manifest_hash"]
    if moved and not force:
        raise Conflict(
            "The workspace changed since the sync; undo with force to go back anyway "
            "(its current state is kept as a snapshot first).",
            code="workspace_moved", extra={"sync_id": run["id"], "current_snapshot_id": workspace["current_snapshot_id"]},
        )
    target_manifest = await snapshots.manifest_of(platform, run["pre_sync_snapshot_id"])
    if target_manifest is None:
        raise NotFound("The pre-sync snapshot no longer exists.")
    project_id = workspace["project_id"]
    writes: list[Statement] = []
    before_undo_id = None
    if moved and current is not None:
        head_manifest = await snapshots.manifest_of(platform, workspace["current_snapshot_id"])
        if head_manifest != current:
            before_undo_id = new_id(platform, "snp")
            writes += snapshots.insert_statements(
                platform, snapshot_id=before_undo_id, project_id=project_id, workspace_id=workspace_id,
                manifest_hash=current,
                parent_ids=[workspace["current_snapshot_id"]] if workspace["current_snapshot_id"] else [],
                source="sync", summary="Before undoing a sync", move_workspace=False,
            )
    now = now_iso(platform)
    db = platform.db
    batch = [
        _move_workspace(platform, workspace_id, run["pre_sync_snapshot_id"], target_manifest,
                        expected_version=workspace["version"], now=now),
        db.prepare(
            "INSERT INTO sync_undos (id, sync_run_id, before_undo_snapshot_id, created_at) "
            "VALUES (?, ?, ?, CASE WHEN changes() = 1 THEN ? END)"
        ).bind(new_id(platform, "snu"), run["id"], before_undo_id, now),
        *writes,
        *events.record(
            platform, project_id, user_id, "workspace.sync_undone", f"Sync of {workspace['name']} undone",
            {"workspace_id": workspace_id, "sync_id": run["id"], "reverted_to_snapshot_id": run["pre_sync_snapshot_id"],
             "before_undo_snapshot_id": before_undo_id},
        ),
    ]
    try:
        await db.batch(batch)
    except ConstraintError:
        raise Conflict("The workspace changed while undoing; nothing was changed. Try again.",
                       code="workspace_changed") from None
    return {
        "success": True,
        "reverted_to_snapshot_id": run["pre_sync_snapshot_id"],
        "manifest_hash": target_manifest,
        "undone_sync_id": run["id"],
        "before_undo_snapshot_id": before_undo_id,
    }
