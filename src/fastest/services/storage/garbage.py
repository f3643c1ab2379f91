"""Garbage collection: mark and condemn in one atomic D1 batch, then delete from R2, then the rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastest.platform import Platform
from fastest.services.common import dumps, now_iso
from fastest.services.storage.objects import (
    BLOBS,
    GC_CLAIM_TIMEOUT_SECONDS,
    MANIFESTS,
    Kind,
    ago,
    in_chunks,
    in_mib,
)

log = logging.getLogger("fastest.storage")

GC_TIME_BUDGET_SECONDS = GC_CLAIM_TIMEOUT_SECONDS // 3
# Most blobs (and, separately, manifests) one GC run collects for one user when not told otherwise.
GC_DEFAULT_MAX_BLOBS = 10_000
# R2 deletes at most 1,000 keys per call; JSON lists bound as one D1 value stay far below 2 MB.
R2_DELETE_CHUNK = 1000


# --------------------------------------------------------------------------------------------------
# Garbage collection
# --------------------------------------------------------------------------------------------------

# What GC keeps: every manifest hash a user can still reach, and what they reach (DESIGN.md lists
# them). Parameters: ?1 user, ?2 grace cutoff (ISO time). Roots:
# - every snapshot of the user's projects, and every workspace's current manifest;
# - every deployment's source and output (what its site serves, and what a rollback needs);
# - every action-item run's base and result (a ready run is applied from its result later);
# - every sync run's merged tree (what an undo compares against);
# - the blobs a working tree holds (`blob_holds`: a conversation's or a run's unsnapshotted edits)
#   while its conversation or run exists;
# - every manifest touched (uploaded, checked, relied on) within the grace period, which also covers
#   sync previews (kept 30 minutes) as long as the grace period is longer.
# Reachability ignores `state`: it is about references.
_REACHABLE = (
    "WITH RECURSIVE"
    # Two groups of roots, because D1 (like Durable Object SQL) allows at most five terms in one
    # compound SELECT.
    " content_roots(hash) AS ("
    "  SELECT s.manifest_hash FROM snapshots s JOIN projects p ON p.id = s.project_id WHERE p.user_id = ?1"
    "  UNION SELECT w.current_manifest_hash FROM workspaces w JOIN projects p ON p.id = w.project_id"
    "   WHERE p.user_id = ?1 AND w.current_manifest_hash IS NOT NULL"
    "  UNION SELECT u.manifest_hash FROM sync_runs u JOIN workspaces w ON w.id = u.workspace_id"
    "   JOIN projects p ON p.id = w.project_id WHERE p.user_id = ?1"
    "  UNION SELECT m.hash FROM manifests m WHERE m.user_id = ?1 AND m.touched_at >= ?2"
    " ),"
    " output_roots(hash) AS ("
    "  SELECT d.output_manifest_hash FROM deployments d WHERE d.user_id = ?1 AND d.output_manifest_hash IS NOT NULL"
    "  UNION SELECT d.source_manifest_hash FROM deployments d WHERE d.user_id = ?1 AND d.source_manifest_hash IS NOT NULL"
    "  UNION SELECT r.result_manifest_hash FROM action_item_runs r WHERE r.user_id = ?1 AND r.result_manifest_hash IS NOT NULL"
    "  UNION SELECT r.base_manifest_hash FROM action_item_runs r WHERE r.user_id = ?1 AND r.base_manifest_hash IS NOT NULL"
    " ),"
    " roots(hash) AS (SELECT hash FROM content_roots UNION SELECT hash FROM output_roots),"
    " reachable(hash) AS ("
    "  SELECT hash FROM roots"
    "  UNION"
    "  SELECT e.child_hash FROM reachable r JOIN manifest_edges e"
    "   ON e.user_id = ?1 AND e.parent_hash = r.hash AND e.child_type = 'tree'"
    " ),"
    " reachable_blobs(hash) AS ("
    "  SELECT e.child_hash FROM reachable r JOIN manifest_edges e"
    "   ON e.user_id = ?1 AND e.parent_hash = r.hash AND e.child_type = 'blob'"
    "  UNION SELECT h.hash FROM blob_holds h WHERE h.user_id = ?1 AND ("
    "   EXISTS (SELECT 1 FROM conversations c WHERE c.id = h.holder)"
    "   OR EXISTS (SELECT 1 FROM action_item_runs r WHERE 'run:' || r.id = h.holder))"
    " ) "
)
# Unreachable and untouched for the grace period, at most ?3 of them (by hash, so runs agree).
_ORPHAN_BLOBS = (
    "SELECT b.hash FROM blob_refs b WHERE b.user_id = ?1 AND b.state = 'live' AND b.touched_at < ?2"
    " AND b.hash NOT IN (SELECT hash FROM reachable_blobs) ORDER BY b.hash LIMIT ?3"
)
_ORPHAN_MANIFESTS = (
    "SELECT m.hash FROM manifests m WHERE m.user_id = ?1 AND m.state = 'live' AND m.touched_at < ?2"
    " AND m.hash NOT IN (SELECT hash FROM reachable) ORDER BY m.hash LIMIT ?3"
)


@dataclass
class _Victims:
    hashes: list[str]
    sizes: int


async def collect_garbage(
    platform: Platform, user_id: str, *, dry_run: bool = True, max_blobs: int | None = None
) -> dict[str, Any]:
    """Collect this user's unreachable blobs and manifests untouched for the grace period.

    `{success, dryRun, scannedBlobs, orphanedBlobs, freedBytes, freedMB, scannedManifests,
    orphanedManifests}`; a dry run only counts. Safe beside uploads, closure checks and other runs:
    mark and condemn are one atomic batch whose statements re-check reachability and age, so anything
    touched before it is kept and anything touched after it sees 'deleting' (missing). Objects are
    then deleted from R2, then their rows; a crash leaves rows in 'deleting' that a later run (or an
    upload of that hash) finishes once the claim timeout has passed.
    """
    limit = GC_DEFAULT_MAX_BLOBS if max_blobs is None else max_blobs
    cutoff = ago(platform, platform.settings.gc_grace_seconds)
    if dry_run:
        return await _count_garbage(platform, user_id, cutoff, limit)
    started = platform.clock.now()
    scanned_blobs, scanned_manifests, condemned_blobs, condemned_manifests = await _condemn(
        platform, user_id, cutoff, limit
    )
    abandoned_blobs, abandoned_manifests = await _abandoned(platform, user_id, limit)
    deadline = started + timedelta(seconds=GC_TIME_BUDGET_SECONDS)
    freed_manifests = await _delete_condemned(
        platform, MANIFESTS, user_id, _merge(condemned_manifests, abandoned_manifests), deadline
    )
    freed_blobs = await _delete_condemned(platform, BLOBS, user_id, _merge(condemned_blobs, abandoned_blobs), deadline)
    freed_bytes = freed_blobs.sizes + freed_manifests.sizes
    return {
        "success": True,
        "dryRun": False,
        "scannedBlobs": scanned_blobs,
        "orphanedBlobs": len(freed_blobs.hashes),
        "freedBytes": freed_bytes,
        "freedMB": in_mib(freed_bytes),
        "scannedManifests": scanned_manifests,
        "orphanedManifests": len(freed_manifests.hashes),
    }


async def _count_garbage(platform: Platform, user_id: str, cutoff: str, limit: int) -> dict[str, Any]:
    db = platform.db
    blobs, manifests = await db.batch(
        [
            db.prepare(
                _REACHABLE + "SELECT (SELECT COUNT(*) FROM blob_refs WHERE user_id = ?1 AND state = 'live') AS scanned,"
                f" COUNT(*) AS orphaned, COALESCE(SUM(size), 0) AS bytes FROM blob_refs WHERE user_id = ?1"
                f" AND hash IN ({_ORPHAN_BLOBS})"
            ).bind(user_id, cutoff, limit),
            db.prepare(
                _REACHABLE + "SELECT (SELECT COUNT(*) FROM manifests WHERE user_id = ?1 AND state = 'live') AS scanned,"
                f" COUNT(*) AS orphaned, COALESCE(SUM(size), 0) AS bytes FROM manifests WHERE user_id = ?1"
                f" AND hash IN ({_ORPHAN_MANIFESTS})"
            ).bind(user_id, cutoff, limit),
        ]
    )
    blob_row, manifest_row = blobs.results[0], manifests.results[0]
    freed = int(blob_row["bytes"]) + int(manifest_row["bytes"])
    return {
        "success": True,
        "dryRun": True,
        "scannedBlobs": int(blob_row["scanned"]),
        "orphanedBlobs": int(blob_row["orphaned"]),
        "freedBytes": freed,
        "freedMB": in_mib(freed),
        "scannedManifests": int(manifest_row["scanned"]),
        "orphanedManifests": int(manifest_row["orphaned"]),
    }


async def _condemn(
    platform: Platform, user_id: str, cutoff: str, limit: int
) -> tuple[int, int, dict[str, int], dict[str, int]]:
    """Mark and flip in ONE batch (one transaction): (scanned blobs, scanned manifests, condemned
    blobs {hash: size}, condemned manifests {hash: size}).

    The flips compute reachability and age inside their own WHERE, so there is no window between
    "mark" and "sweep" for a touch to fall into. The last statement keeps the closure invariant for
    the unreachable manifests this run leaves live (possible only when `limit` cut the run short).
    """
    db = platform.db
    now = now_iso(platform)
    scanned, blobs, manifests, _ = await db.batch(
        [
            db.prepare(
                "SELECT (SELECT COUNT(*) FROM blob_refs WHERE user_id = ?1 AND state = 'live') AS blobs,"
                " (SELECT COUNT(*) FROM manifests WHERE user_id = ?1 AND state = 'live') AS manifests"
            ).bind(user_id),
            db.prepare(
                _REACHABLE + "UPDATE blob_refs SET state = 'deleting', deleting_since = ?4"
                f" WHERE user_id = ?1 AND hash IN ({_ORPHAN_BLOBS}) RETURNING hash, size"
            ).bind(user_id, cutoff, limit, now),
            db.prepare(
                _REACHABLE + "UPDATE manifests SET state = 'deleting', deleting_since = ?4"
                f" WHERE user_id = ?1 AND hash IN ({_ORPHAN_MANIFESTS}) RETURNING hash, size"
            ).bind(user_id, cutoff, limit, now),
            db.prepare(
                _REACHABLE + "UPDATE manifests SET closure_verified_at = NULL WHERE user_id = ?1 AND state = 'live'"
                " AND closure_verified_at IS NOT NULL AND hash NOT IN (SELECT hash FROM reachable)"
            ).bind(user_id, cutoff),
        ]
    )
    counts = scanned.results[0]
    return (
        int(counts["blobs"]),
        int(counts["manifests"]),
        {r["hash"]: int(r["size"]) for r in blobs.results},
        {r["hash"]: int(r["size"]) for r in manifests.results},
    )


async def _abandoned(platform: Platform, user_id: str, limit: int) -> tuple[dict[str, int], dict[str, int]]:
    """Rows left in 'deleting' by runs that have certainly stopped (crashed or out of time)."""
    db = platform.db
    expired = ago(platform, GC_CLAIM_TIMEOUT_SECONDS)
    statements = [
        db.prepare(
            f"SELECT hash, size FROM {kind.table} WHERE user_id = ? AND state = 'deleting' "
            "AND (deleting_since IS NULL OR deleting_since <= ?) ORDER BY hash LIMIT ?"
        ).bind(user_id, expired, limit)
        for kind in (BLOBS, MANIFESTS)
    ]
    blobs, manifests = await db.batch(statements)
    return (
        {r["hash"]: int(r["size"]) for r in blobs.results},
        {r["hash"]: int(r["size"]) for r in manifests.results},
    )


async def hold_blob(platform: Platform, user_id: str, holder: str, blob_hash: str) -> None:
    """Keep `blob_hash` from GC while `holder` (a conversation id, or `run:<run id>`) exists: its
    working tree names the blob before any manifest does. Call it right after the blob is stored
    (its fresh touch covers the moment in between)."""
    await platform.db.prepare(
        "INSERT OR IGNORE INTO blob_holds (user_id, holder, hash, created_at) VALUES (?, ?, ?, ?)"
    ).bind(user_id, holder, blob_hash, now_iso(platform)).run()


def _merge(first: dict[str, int], second: dict[str, int]) -> dict[str, int]:
    return {**second, **first}


async def _delete_condemned(
    platform: Platform, kind: Kind, user_id: str, condemned: dict[str, int], deadline: datetime
) -> _Victims:
    """Delete condemned objects from R2, then their rows, 1,000 at a time. Stops at the deadline,
    leaving the rest in 'deleting' for a later run (after the claim timeout)."""
    db = platform.db
    freed = _Victims(hashes=[], sizes=0)
    hashes = sorted(condemned)
    for chunk in in_chunks(hashes, R2_DELETE_CHUNK):
        if platform.clock.now() >= deadline:
            left = len(hashes) - len(freed.hashes)
            log.warning("GC for %s stopped at its time budget; %d %s(s) left", user_id, left, kind.noun)
            break
        await platform.blobs.delete([kind.key(user_id, h) for h in chunk])
        await db.prepare(
            f"DELETE FROM {kind.table} WHERE user_id = ? AND state = 'deleting' "
            "AND hash IN (SELECT value FROM json_each(?))"
        ).bind(user_id, dumps(list(chunk))).run()
        freed.hashes.extend(chunk)
        freed.sizes += sum(condemned[h] for h in chunk)
    return freed


async def collect_garbage_all_users(platform: Platform) -> int:
    """The scheduled GC: every user with stored objects, one after another (default limits per user;
    what is left waits for the next run). Returns how many blobs and manifests were collected. One
    user's failure is logged and does not stop the others."""
    db = platform.db
    collected = 0
    after = ""
    while True:
        rows = (
            await db.prepare(
                "SELECT id FROM users WHERE id > ? AND (EXISTS (SELECT 1 FROM blob_refs b WHERE b.user_id = users.id)"
                " OR EXISTS (SELECT 1 FROM manifests m WHERE m.user_id = users.id)) ORDER BY id LIMIT 100"
            ).bind(after).all()
        ).results
        if not rows:
            return collected
        for row in rows:
            try:
                result = await collect_garbage(platform, row["id"], dry_run=False)
            except Exception:
                log.exception("GC failed for user %s", row["id"])
                continue
            collected += result["orphanedBlobs"] + result["orphanedManifests"]
        after = rows[-1]["id"]
