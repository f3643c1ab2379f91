"""Closure checks (snapshot creation): is every manifest and blob a tree reaches stored and live?"""

from __future__ import annotations

from typing import Any

from fastest.domain.manifest import is_sha256_hex
from fastest.errors import ValidationFailed
from fastest.platform import Platform
from fastest.services.common import now_iso

# How many missing hashes a closure check lists (the count is always exact).
MISSING_REPORT_LIMIT = 1000


# --------------------------------------------------------------------------------------------------
# Closure checks (snapshot creation)
# --------------------------------------------------------------------------------------------------

# The manifests a closure check has to look at: the root, and the children of every live manifest
# whose closure has not been verified yet. A verified manifest's subtree is skipped (see the closure
# invariant above); a missing manifest has no edges to follow. Parameters: ?1 user, ?2 root.
_UNVERIFIED_WALK = (
    "WITH RECURSIVE walk(hash) AS ("
    " SELECT ?2"
    " UNION"
    " SELECT e.child_hash FROM walk w"
    "  JOIN manifests m ON m.user_id = ?1 AND m.hash = w.hash AND m.state = 'live' AND m.closure_verified_at IS NULL"
    "  JOIN manifest_edges e ON e.user_id = ?1 AND e.parent_hash = w.hash AND e.child_type = 'tree'"
    ") "
)


async def verify_closure(platform: Platform, user_id: str, root_hash: str) -> None:
    """Check that the tree rooted at `root_hash` is complete: every manifest and blob it reaches is
    stored (live) for this user. Raises 422 `manifest_missing` (`missing_manifests`, at most 1,000,
    and `missing_manifest_count`) or `blobs_missing` (`missing_blobs`, `missing_blob_count`).

    Never reads R2: it walks manifest_edges with recursive queries, skipping subtrees verified
    before, so a re-push after a one-file change checks only the manifests on that file's path.

    GC safety: the root is touched first, as the existence check of the root, which makes it a GC
    root for the grace period — nothing in its closure can be condemned from then on, and what was
    condemned before is 'deleting', so the check below reports it missing. A snapshot row that the
    caller inserts right after is the permanent root. (Touching every blob would add nothing to that
    and cost a write per file.)
    """
    if not is_sha256_hex(root_hash):
        raise _manifests_missing([root_hash], 1)
    db = platform.db
    now = now_iso(platform)
    root = await db.prepare(
        "UPDATE manifests SET touched_at = ? WHERE user_id = ? AND hash = ? AND state = 'live' "
        "RETURNING closure_verified_at"
    ).bind(now, user_id, root_hash).all()
    if not root.results:
        raise _manifests_missing([root_hash], 1)
    if root.results[0]["closure_verified_at"] is not None:
        return
    missing_manifests, missing_blobs = await _find_missing(platform, user_id, root_hash)
    if missing_manifests:
        raise _manifests_missing([r["hash"] for r in missing_manifests], missing_manifests[0]["total"])
    if missing_blobs:
        total = missing_blobs[0]["total"]
        raise ValidationFailed(
            f"{total} blob(s) of this tree are not stored; upload them and retry.",
            code="blobs_missing",
            fields={"manifest_hash": "references blobs that are not stored"},
            extra={"missing_blobs": [r["hash"] for r in missing_blobs], "missing_blob_count": total},
        )
    await db.prepare(
        _UNVERIFIED_WALK + "UPDATE manifests SET closure_verified_at = ?3 WHERE user_id = ?1 AND state = 'live' "
        "AND closure_verified_at IS NULL AND hash IN (SELECT hash FROM walk)"
    ).bind(user_id, root_hash, now).run()


async def _find_missing(
    platform: Platform, user_id: str, root_hash: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(missing manifests, missing blobs) below the root, each at most MISSING_REPORT_LIMIT rows of
    `{hash, total}` (total: the full count), read in one batch so both come from one moment."""
    db = platform.db
    manifests, blobs = await db.batch(
        [
            db.prepare(
                _UNVERIFIED_WALK + "SELECT hash, COUNT(*) OVER () AS total FROM walk w WHERE NOT EXISTS "
                "(SELECT 1 FROM manifests m WHERE m.user_id = ?1 AND m.hash = w.hash AND m.state = 'live') "
                "ORDER BY hash LIMIT ?3"
            ).bind(user_id, root_hash, MISSING_REPORT_LIMIT),
            db.prepare(
                _UNVERIFIED_WALK + "SELECT hash, COUNT(*) OVER () AS total FROM ("
                " SELECT DISTINCT e.child_hash AS hash FROM walk w"
                "  JOIN manifests m ON m.user_id = ?1 AND m.hash = w.hash AND m.state = 'live' "
                "   AND m.closure_verified_at IS NULL"
                "  JOIN manifest_edges e ON e.user_id = ?1 AND e.parent_hash = w.hash AND e.child_type = 'blob'"
                "  WHERE NOT EXISTS (SELECT 1 FROM blob_refs b WHERE b.user_id = ?1 AND b.hash = e.child_hash "
                "   AND b.state = 'live')"
                ") ORDER BY hash LIMIT ?3"
            ).bind(user_id, root_hash, MISSING_REPORT_LIMIT),
        ]
    )
    return manifests.results, blobs.results


def _manifests_missing(hashes: list[str], total: int) -> ValidationFailed:
    return ValidationFailed(
        f"{total} manifest(s) of this tree are not stored; upload them and retry.",
        code="manifest_missing",
        fields={"manifest_hash": "the tree is not fully uploaded"},
        extra={"missing_manifests": hashes, "missing_manifest_count": total},
    )
