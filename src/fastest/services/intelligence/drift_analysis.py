"""Drift analysis (`POST /v1/workspaces/{workspace_id}/drift/analyze`).

`can_auto_sync` and `conflicts_predicted` come from a dry run of the sync merge: the same two sides,
merge base, tree merge and line merges as `sync.prepare`, but nothing is stored (no preview, no
blob, no drift report) and no model is asked to combine anything. A conflict that a line merge
settles is not predicted; anything else prepare would turn into a decision is. `risk_level` comes
from the drift metrics (main → workspace). The model, when one is configured, writes only the
summary and the recommendation, from those facts; without one they are stated plainly by rules.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fastest.domain import drift
from fastest.domain.merge import is_text, merge_mode, merge_text, merge_trees
from fastest.platform import Platform
from fastest.services import storage, sync
from fastest.services.ai import ai_budget, models
from fastest.services.sync import snapshots
from fastest.services.sync.merges import (
    merge_base,
    needs_mass_change_confirmation,
    read_versions,
    sync_sides,
)

log = logging.getLogger(__name__)

LISTED = 50


class _ModelText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_changes_summary: str = Field(min_length=3, max_length=2000)
    recommendation: str = Field(min_length=3, max_length=1000)


async def dry_run(platform: Platform, user_id: str, workspace_id: str) -> dict[str, Any]:
    workspace, ours, theirs = await sync_sides(platform, user_id, workspace_id)
    base_id, base_manifest = await merge_base(platform, workspace["project_id"], ours, theirs)
    load = storage.manifest_loader(platform, user_id)
    result = await merge_trees(base_manifest, ours.manifest_hash, theirs.manifest_hash, load)
    predicted: list[dict[str, Any]] = []
    line_merged = 0
    for conflict in result.conflicts:
        both_files = conflict.ours is not None and conflict.theirs is not None \
            and conflict.ours.type == "file" and conflict.theirs.type == "file"
        if both_files and conflict.kind == "modify/modify":
            texts = await read_versions(platform, user_id, conflict)
            if texts is not None and all(is_text(t) for t in texts):
                merged = merge_text(*texts)
                mode = merge_mode(conflict.base.mode, conflict.ours.mode, conflict.theirs.mode)  # type: ignore[union-attr]
                if merged.clean and merged.content is not None and mode is not None:
                    line_merged += 1
                    continue
        predicted.append({"path": conflict.path, "kind": conflict.kind})
    adds = sum(1 for p, r in result.updates.items() if r is not None and p in result.new_paths)
    deletes = sum(1 for r in result.updates.values() if r is None)
    updates = len(result.updates) - adds - deletes + line_merged
    file_count = await storage.file_count(platform, user_id, ours.manifest_hash)
    counts = {"files_added": adds, "files_deleted": deletes, "files_updated": updates}
    return {
        "workspace": workspace, "ours": ours, "theirs": theirs, "base_snapshot_id": base_id,
        "conflicts": predicted, "counts": counts, "line_merged": line_merged,
        "mass_change": needs_mass_change_confirmation(platform, file_count, counts),
        "up_to_date": not result.updates and not result.conflicts,
    }


def _rules_text(run: dict[str, Any], metrics: dict[str, Any]) -> tuple[str, str]:
    counts = run["counts"]
    summary = (
        f"Main brings {counts['files_updated']} updated, {counts['files_added']} added and {counts['files_deleted']} "
        f"deleted file(s) to this workspace"
        + (f" ({run['line_merged']} merged line by line)" if run["line_merged"] else "")
        + f". The workspace differs from main in {metrics['files_added'] + metrics['files_modified'] + metrics['files_deleted']} "
        f"file(s): {metrics['files_added']} added, {metrics['files_modified']} modified, {metrics['files_deleted']} deleted "
        f"(overlap {metrics['overlap_ratio']:.0%}, risk {metrics['risk_level']})."
    )
    conflicts = run["conflicts"]
    if run["up_to_date"]:
        recommendation = "Nothing to sync: the workspace already has everything main has."
    elif conflicts:
        listed = ", ".join(c["path"] for c in conflicts[:5]) + (" …" if len(conflicts) > 5 else "")
        recommendation = (f"Sync needs {len(conflicts)} decision(s) ({listed}): prepare the sync and choose a version for "
                          "each, or resolve them in the workspace first.")
    elif run["mass_change"]:
        recommendation = "The sync merges cleanly but replaces most of the workspace: review the preview and confirm it."
    else:
        recommendation = "Sync now: every change from main applies cleanly (`fastest sync`)."
    return summary, recommendation


async def analyze(platform: Platform, user_id: str, workspace_id: str, *, include_dirty: bool) -> dict[str, Any]:
    run = await dry_run(platform, user_id, workspace_id)
    workspace, ours, theirs = run["workspace"], run["ours"], run["theirs"]
    mine = ours.manifest_hash if include_dirty else (await snapshots.manifest_of(platform, workspace["current_snapshot_id"]) or ours.manifest_hash)
    summary_metrics = await drift.summarize_async(
        snapshots.changes_between(platform, user_id, theirs.manifest_hash, mine),
        old_file_count=await storage.file_count(platform, user_id, theirs.manifest_hash),
        new_file_count=await storage.file_count(platform, user_id, mine),
    )
    metrics = summary_metrics.to_json()
    summary, recommendation = _rules_text(run, metrics)
    provider, model_name = "rules", "rules"
    model = await models.for_user(platform, user_id)
    if models.is_model(model):
        facts = {"workspace": workspace["name"], "drift": {k: metrics[k] for k in (
                     "files_added", "files_modified", "files_deleted", "overlap_ratio", "risk_level", "counts_by_extension")},
                 "changed_paths": metrics["paths"], "sync_dry_run": {
                     "can_auto_sync": not run["conflicts"] and not run["mass_change"], "conflicts": run["conflicts"][:LISTED],
                     "changes_from_main": run["counts"], "line_merged": run["line_merged"]}}
        prompt = ("Summarise this workspace's changes relative to main and recommend how to sync, from these facts only "
                  "(do not contradict can_auto_sync or the conflicts). Answer with JSON only: "
                  '{"source_changes_summary": str, "recommendation": str}\n\n' + json.dumps(facts))
        schema = {"name": "drift_analysis", "strict": True, "schema": _ModelText.model_json_schema()}
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        for _ in range(2):
            await ai_budget.spend(platform, user_id)
            try:
                answer = await model.complete(messages, temperature=0, max_tokens=800,
                                              response_format={"type": "json_schema", "json_schema": schema})
                text = _ModelText.model_validate_json(str(answer.get("content") or "").strip().strip("`").removeprefix("json"))
                summary, recommendation = text.source_changes_summary, text.recommendation
                provider, model_name = model.provider, model.model
                break
            except ValidationError:
                messages = messages + [{"role": "user", "content": "Not valid JSON of that shape. Answer with the JSON only."}]
            except Exception as exc:
                log.warning("drift analysis: the model failed: %s", type(exc).__name__)
                break
    return {
        "source_changes_summary": summary,
        "risk_level": metrics["risk_level"],
        "can_auto_sync": not run["conflicts"] and not run["mass_change"],
        "recommendation": recommendation,
        "conflicts_predicted": run["conflicts"][:sync.PATH_LIST_LIMIT],
        "files_affected": sum(run["counts"].values()) + len(run["conflicts"]),
        "requires_mass_change_confirmation": run["mass_change"],
        "up_to_date": run["up_to_date"],
        "drift": {k: metrics[k] for k in ("files_added", "files_modified", "files_deleted", "overlap_ratio", "bytes_changed")},
        "base_snapshot_id": run["base_snapshot_id"],
        "provider": provider,
        "model": model_name,
    }
