"""Action items: what needs attention across a user's workspaces.

Items come from *finding sources*, each a function `(platform, user_id) -> [item]`:

- analysis findings (`domain.findings`: committed secrets, manifests without lockfiles, oversized
  binaries, modules without tests), computed per workspace tree and persisted in D1
  (`action_items`), recomputed when the tree moves: lazily when a user lists their items (a few
  workspaces per request), and for every workspace by the `refresh-action-items` job;
- drift findings (a workspace behind main for a day or more, a risky latest drift report),
  computed when listed from what the workspaces and their drift reports already say;
- whatever `FINDING_SOURCES` is given later — failed deployments, once the deployments branch has
  landed (`FINDING_SOURCES.append(deploy_items)`; the source returns views built by `item_view`).

An item's id is derived from the user and its fingerprint (kind + workspace + subject), so it is the
same on every listing while the problem lasts. A dismissal (any kind) records the magnitude it was
given at; the item shows again when its magnitude grows past it (more secrets in the file).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Awaitable, Callable, Mapping

from fastest.domain import drift, findings
from fastest.domain.ids import parse_iso
from fastest.domain.secrets import SecretHit
from fastest.domain.tree import walk
from fastest.errors import NotFound, PayloadTooLarge
from fastest.platform import Platform
from fastest.services import events, storage
from fastest.services.common import dumps, now_iso
from fastest.services.sync import analysis_queue, workspaces

log = logging.getLogger("fastest.action_items")

# Reading a tree's text for the secret scan is bounded: what is not read is not scanned.
ANALYSIS_MAX_FILES = 20_000
ANALYSIS_MAX_TEXT_BYTES = 64 * 1024 * 1024
LAZY_ANALYSES_PER_LISTING = 3  # trees analysed inside a `GET /v1/action-items` (the job does the rest)
LAZY_SCAN_BYTES = 2 * 1024 * 1024  # new text a listing may scan for secrets (~2 s); bigger trees wait for the job

CATEGORIES = {
    "secrets": "security", "missing-lockfile": "dependencies", "oversized-binary": "repository",
    "untested-modules": "testing", "drift-stale": "drift", "drift-risky": "drift", "drift-sync-failed": "drift",
    "deploy-failed": "deployments",
}
RUNNABLE_KINDS = {"secrets", "missing-lockfile", "oversized-binary", "untested-modules"}

ItemSource = Callable[[Platform, str], Awaitable[list[dict[str, Any]]]]


def item_id(user_id: str, fingerprint: str) -> str:
    return "act_" + hashlib.sha256(f"{user_id}\0{fingerprint}".encode("utf-8")).hexdigest()[:26]


def item_view(
    user_id: str, *, kind: str, fingerprint: str, severity: str, magnitude: int, project_id: str,
    workspace_id: str, title: str, description: str, data: Mapping[str, Any], created_at: str,
    snapshot_id: str | None = None, manifest_hash: str | None = None,
) -> dict[str, Any]:
    """An item as the API shows it (docs/api/action-items.md)."""
    runnable = kind in RUNNABLE_KINDS
    if runnable:
        action = {"action_label": "Fix with an agent", "action_type": "run"}
    elif kind.startswith("drift-"):
        action = {"action_label": "Sync with main", "action_type": "sync"}
    else:
        action = {"action_label": "Open", "action_type": "open"}
    return {
        "id": item_id(user_id, fingerprint), "type": kind, "category": CATEGORIES.get(kind, kind.split("-")[0]),
        "severity": severity, "magnitude": magnitude, "fingerprint": fingerprint,
        "workspace_id": workspace_id, "project_id": project_id, "snapshot_id": snapshot_id,
        "manifest_hash": manifest_hash, "title": title, "description": description, **action,
        "action_data": {"workspace_id": workspace_id, **dict(data)}, "created_at": created_at,
    }


# --------------------------------------------------------------------------------------------------
# Analysis: persisted per workspace tree
# --------------------------------------------------------------------------------------------------


class AnalysisDeferred(Exception):
    """The tree has more unscanned text than this call may scan: left for the job."""


async def _cached_scans(platform: Platform, user_id: str, hashes: list[str]) -> dict[str, list[SecretHit]]:
    found: dict[str, list[SecretHit]] = {}
    for start in range(0, len(hashes), 500):
        rows = (await platform.db.prepare(
            "SELECT blob_hash, hits FROM action_item_blob_scans WHERE user_id = ? "
            "AND blob_hash IN (SELECT value FROM json_each(?))"
        ).bind(user_id, json.dumps(hashes[start:start + 500])).all()).results
        for row in rows:
            found[row["blob_hash"]] = [SecretHit(*hit) for hit in json.loads(row["hits"])]
    return found


async def analyze_tree(platform: Platform, user_id: str, root: str | None, *,
                       scan_budget: int | None = None) -> list[findings.Finding]:
    """Every analysis finding on a stored tree (None: an empty tree has none).

    The secret scan is the costly part (about a second per MB of text), so its result is kept per
    blob (`action_item_blob_scans`): a tree that changed one file scans one file. `scan_budget`:
    the most bytes of not-yet-scanned text this call may scan; beyond it, AnalysisDeferred (the
    listing leaves such trees to the `refresh-action-items` job, which has no budget)."""
    if root is None:
        return []
    load = storage.manifest_loader(platform, user_id)
    listing: list[findings.FileInfo] = []
    wanted: list[tuple[str, str, int]] = []
    texts_needed: list[tuple[str, str]] = []
    async for path, entry in walk(root, load):
        info = findings.FileInfo(path, entry.size or 0)
        listing.append(info)
        if findings.wants_text(info):
            wanted.append((path, entry.hash, info.size))
        if findings.needs_text(path) and info.size <= findings.SECRETS_MAX_FILE_BYTES:
            texts_needed.append((path, entry.hash))
        if len(listing) >= ANALYSIS_MAX_FILES:
            break
    cached = await _cached_scans(platform, user_id, sorted({blob for _, blob, _ in wanted}))
    unscanned = {blob: size for _, blob, size in wanted if blob not in cached}
    if scan_budget is not None and sum(unscanned.values()) > scan_budget:
        raise AnalysisDeferred(f"{sum(unscanned.values())} bytes to scan")
    budget = ANALYSIS_MAX_TEXT_BYTES
    new_scans: dict[str, list[SecretHit]] = {}
    for path, blob_hash, size in wanted:
        if blob_hash in cached or blob_hash in new_scans or size > budget:
            continue
        budget -= size
        text = await _text(platform, user_id, blob_hash)
        new_scans[blob_hash] = findings.scan_text(path, text) if text is not None else []
    if new_scans:
        now = now_iso(platform)
        await platform.db.batch([
            platform.db.prepare(
                "INSERT OR REPLACE INTO action_item_blob_scans (user_id, blob_hash, hits, scanned_at) VALUES (?, ?, ?, ?)"
            ).bind(user_id, blob_hash, dumps([[h.rule, h.line, h.secret_sha256] for h in hits]), now)
            for blob_hash, hits in new_scans.items()
        ])
    scans = {**cached, **new_scans}
    hits_by_path = {path: scans[blob] for path, blob, _ in wanted if blob in scans}
    texts = {}
    for path, blob_hash in texts_needed:
        text = await _text(platform, user_id, blob_hash)
        if text is not None:
            texts[path] = text
    return findings.analyze(listing, texts, secret_hits=hits_by_path)


async def _text(platform: Platform, user_id: str, blob_hash: str) -> str | None:
    try:
        data = await storage.read_blob(platform, user_id, blob_hash, max_bytes=findings.SECRETS_MAX_FILE_BYTES)
    except (NotFound, PayloadTooLarge):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def analyze_workspace(platform: Platform, user_id: str, workspace: Mapping[str, Any], *, force: bool = False,
                            scan_budget: int | None = None) -> bool:
    """Recompute the workspace's analysis findings if its tree moved since the last analysis (or
    `force`). Replaces them in one batch. True when it analysed."""
    root = await workspaces.tree_of(platform, workspace, include_dirty=True)
    manifest = root or ""
    analyzed = await platform.db.prepare(
        "SELECT manifest_hash FROM action_item_analyses WHERE workspace_id = ?"
    ).bind(workspace["id"]).first("manifest_hash")
    if analyzed == manifest and not force:
        return False
    found = await analyze_tree(platform, user_id, root, scan_budget=scan_budget)
    now = now_iso(platform)
    db = platform.db
    writes = [db.prepare("DELETE FROM action_items WHERE workspace_id = ?").bind(workspace["id"])]
    for finding in found:
        fingerprint = finding.fingerprint(workspace["id"])
        writes.append(db.prepare(
            "INSERT INTO action_items (id, user_id, project_id, workspace_id, manifest_hash, snapshot_id, kind, "
            "fingerprint, severity, magnitude, title, description, data, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ).bind(item_id(user_id, fingerprint), user_id, workspace["project_id"], workspace["id"], manifest,
               workspace["current_snapshot_id"], finding.kind, fingerprint, finding.severity, finding.magnitude,
               finding.title, finding.description, dumps(dict(finding.data)), now))
    writes.append(analysis_queue.dequeue_statement(platform, workspace["id"]))
    writes.append(db.prepare(
        "INSERT INTO action_item_analyses (workspace_id, user_id, manifest_hash, snapshot_id, analyzed_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (workspace_id) DO UPDATE SET manifest_hash = excluded.manifest_hash, "
        "snapshot_id = excluded.snapshot_id, analyzed_at = excluded.analyzed_at"
    ).bind(workspace["id"], user_id, manifest, workspace["current_snapshot_id"], now))
    await db.batch(writes)
    return True


async def _owned_workspaces(platform: Platform, user_id: str | None) -> list[dict[str, Any]]:
    where, args = ("WHERE p.user_id = ?", [user_id]) if user_id is not None else ("", [])
    return (await platform.db.prepare(
        "SELECT w.*, p.user_id, p.main_workspace_id, a.manifest_hash AS analyzed_manifest, q.queued_at FROM workspaces w "
        "JOIN projects p ON p.id = w.project_id LEFT JOIN action_item_analyses a ON a.workspace_id = w.id "
        f"LEFT JOIN action_item_queue q ON q.workspace_id = w.id {where} ORDER BY q.queued_at IS NULL, q.queued_at, w.rowid"
    ).bind(*args).all()).results


async def refresh(platform: Platform, user_id: str | None = None, *, limit: int | None = None,
                  scan_budget: int | None = None) -> int:
    """Analyse the workspaces (of one user, or all) whose tree moved since their last analysis; at
    most `limit` of them. Returns how many were analysed. Safe to run twice at once (each analysis
    replaces the workspace's findings whole)."""
    done = 0
    for workspace in await _owned_workspaces(platform, user_id):
        if limit is not None and done >= limit:
            break
        root = await workspaces.tree_of(platform, workspace, include_dirty=True)
        if (root or "") == workspace["analyzed_manifest"]:
            if workspace["queued_at"] is not None:  # queued, but that tree was analysed already
                await analysis_queue.dequeue_statement(platform, workspace["id"]).run()
            continue
        try:
            if await analyze_workspace(platform, workspace["user_id"], workspace, force=True, scan_budget=scan_budget):
                done += 1
        except AnalysisDeferred:
            log.info("analysis of workspace %s left to the job (too much new text)", workspace["id"])
        except Exception:
            log.exception("analysis of workspace %s failed", workspace["id"])
    return done


async def analysis_items(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    rows = (await platform.db.prepare(
        "SELECT i.* FROM action_items i JOIN projects p ON p.id = i.project_id WHERE i.user_id = ? AND p.user_id = ?"
    ).bind(user_id, user_id).all()).results
    return [item_view(
        user_id, kind=r["kind"], fingerprint=r["fingerprint"], severity=r["severity"], magnitude=r["magnitude"],
        project_id=r["project_id"], workspace_id=r["workspace_id"], title=r["title"], description=r["description"],
        data=json.loads(r["data"]), created_at=r["created_at"], snapshot_id=r["snapshot_id"],
        manifest_hash=r["manifest_hash"] or None,
    ) for r in rows]


# --------------------------------------------------------------------------------------------------
# Drift: computed when listed
# --------------------------------------------------------------------------------------------------


async def _snapshot_time(platform: Platform, snapshot_id: str | None):
    if snapshot_id is None:
        return None
    value = await platform.db.prepare("SELECT created_at FROM snapshots WHERE id = ?").bind(snapshot_id).first("created_at")
    return parse_iso(value) if value else None


async def drift_items(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    """Workspaces behind main for a day or more (`drift.staleness`), and those whose latest drift
    report rates the drift high-risk."""
    items: list[dict[str, Any]] = []
    rows = await _owned_workspaces(platform, user_id)
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        main = by_id.get(row["main_workspace_id"] or "")
        if main is None or main["id"] == row["id"]:
            continue
        stale = drift.staleness(
            await _snapshot_time(platform, row["base_snapshot_id"] or row["current_snapshot_id"]),
            await _snapshot_time(platform, main["current_snapshot_id"]), platform.clock.now(),
        )
        if stale["level"] != "fresh":
            days = stale["seconds_behind"] // 86400
            very = stale["level"] == "very_stale"
            items.append(item_view(
                user_id, kind="drift-stale", fingerprint=f"drift-stale:{row['id']}", severity="high" if very else "medium",
                magnitude=2 if very else 1, project_id=row["project_id"], workspace_id=row["id"],
                title=f"Workspace {row['name']} is {days} day{'s' if days != 1 else ''} behind main",
                description="Main has moved on since this workspace's base; the longer it waits, the harder the sync. Sync it with main.",
                data={"staleness": stale, "main_workspace_id": main["id"]}, created_at=now_iso(platform),
            ))
        failed = await _failed_syncs_since_success(platform, row)
        if failed:
            items.append(item_view(
                user_id, kind="drift-sync-failed", fingerprint=f"drift-sync-failed:{row['id']}", severity="high",
                magnitude=failed["count"], project_id=row["project_id"], workspace_id=row["id"],
                title=f"The last sync of workspace {row['name']} failed",
                description=f"Syncing with main failed ({failed['code']}) and has not succeeded since; prepare the sync again.",
                data={"code": failed["code"], "failures": failed["count"]}, created_at=failed["created_at"],
            ))
        report = await workspaces.latest_drift(platform, row["id"])
        if report and report.get("risk_level") == "high":
            items.append(item_view(
                user_id, kind="drift-risky", fingerprint=f"drift-risky:{row['id']}", severity="high", magnitude=1,
                project_id=row["project_id"], workspace_id=row["id"],
                title=f"Workspace {row['name']} has drifted far from main",
                description="The latest drift report rates this workspace's changes against main high-risk; review and sync them.",
                data={"drift_report_id": report["id"], "files_added": report["files_added"],
                      "files_modified": report["files_modified"], "files_deleted": report["files_deleted"]},
                created_at=report["created_at"],
            ))
    return items


async def _failed_syncs_since_success(platform: Platform, workspace: Mapping[str, Any]) -> dict[str, Any] | None:
    """The sync failures logged for the workspace after its last successful sync (or undo)."""
    rows = (await platform.db.prepare(
        "SELECT type, data, created_at FROM project_events WHERE project_id = ? "
        "AND type IN ('workspace.synced', 'workspace.sync_undone', 'workspace.sync_failed') "
        "AND json_extract(data, '$.workspace_id') = ? ORDER BY seq DESC LIMIT 50"
    ).bind(workspace["project_id"], workspace["id"]).all()).results
    failures = []
    for row in rows:
        if row["type"] != "workspace.sync_failed":
            break
        failures.append(row)
    if not failures:
        return None
    return {"count": len(failures), "code": json.loads(failures[0]["data"]).get("code"), "created_at": failures[0]["created_at"]}


async def deploy_items(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    """A project whose last finished deployment failed: one item per project, worse with each
    further failure in a row; gone once a deployment of it goes live."""
    from fastest.services import (
        deployments,  # deployments reach back here through projects
    )

    items = []
    for failing in await deployments.failing_projects(platform, user_id):
        failures = failing["failures"]
        items.append(item_view(
            user_id, kind="deploy-failed", fingerprint=f"deploy-failed:{failing['project_id']}", severity="high",
            magnitude=failures, project_id=failing["project_id"], workspace_id=failing["workspace_id"] or "",
            title="The last deployment failed" + (f" ({failures} in a row)" if failures > 1 else ""),
            description=(failing["error"] or "The deployment failed.")[:500]
            + " Read its log (`fastest deployments`, GET /v1/infrastructure/deployments/{id}/logs), fix, deploy again.",
            data={"deployment_id": failing["id"], "failures": failures}, created_at=failing["failed_at"],
        ))
    return items


# The sources `list_items` aggregates.
FINDING_SOURCES: list[ItemSource] = [analysis_items, drift_items, deploy_items]


# --------------------------------------------------------------------------------------------------
# Listing, getting, dismissing
# --------------------------------------------------------------------------------------------------


async def _dismissals(platform: Platform, user_id: str) -> dict[str, int]:
    rows = (await platform.db.prepare(
        "SELECT item_id, magnitude FROM action_item_dismissals WHERE user_id = ?"
    ).bind(user_id).all()).results
    return {r["item_id"]: r["magnitude"] for r in rows}


async def all_items(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    """Every item firing now, dismissed or not, sorted by severity (critical first)."""
    await refresh(platform, user_id, limit=LAZY_ANALYSES_PER_LISTING, scan_budget=LAZY_SCAN_BYTES)
    items: list[dict[str, Any]] = []
    for source in FINDING_SOURCES:
        items += await source(platform, user_id)
    items.sort(key=lambda i: (findings.SEVERITY_ORDER.get(i["severity"], 9), i["type"], i["title"], i["id"]))
    return items


async def list_items(platform: Platform, user_id: str, *, include_dismissed: bool = False) -> list[dict[str, Any]]:
    dismissed = await _dismissals(platform, user_id)
    items = []
    for item in await all_items(platform, user_id):
        at = dismissed.get(item["id"])
        item["dismissed"] = at is not None and item["magnitude"] <= at
        if include_dismissed or not item["dismissed"]:
            items.append(item)
    return items


async def get_item(platform: Platform, user_id: str, item_id_: str) -> dict[str, Any]:
    """The item firing now under this id (dismissed ones included); 404 otherwise."""
    for item in await list_items(platform, user_id, include_dismissed=True):
        if item["id"] == item_id_:
            return item
    raise NotFound("Action item not found.")


async def dismiss(platform: Platform, user_id: str, item_id_: str) -> None:
    item = await get_item(platform, user_id, item_id_)
    await platform.db.batch([
        platform.db.prepare(
            "INSERT INTO action_item_dismissals (user_id, item_id, fingerprint, magnitude, dismissed_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id, item_id) DO UPDATE SET magnitude = excluded.magnitude, dismissed_at = excluded.dismissed_at"
        ).bind(user_id, item["id"], item["fingerprint"], item["magnitude"], now_iso(platform)),
        *events.record(platform, item["project_id"], user_id, "action_item.dismissed", f"Dismissed: {item['title']}",
                       {"action_item_id": item["id"], "type": item["type"], "magnitude": item["magnitude"]}),
    ])


async def refresh_job(platform: Platform) -> int:
    """The `refresh-action-items` job: analyse every workspace whose tree moved."""
    return await refresh(platform)
