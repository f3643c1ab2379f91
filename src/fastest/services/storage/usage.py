"""Storage usage per user, from D1 (live rows only)."""

from __future__ import annotations

from typing import Any

from fastest.platform import Platform
from fastest.ports import Statement
from fastest.services.storage.objects import BLOBS, MANIFESTS, in_mib

# --------------------------------------------------------------------------------------------------
# Stats
# --------------------------------------------------------------------------------------------------


async def stats(platform: Platform, user_id: str) -> dict[str, Any]:
    """`{blobs: {count, bytes, mb}, manifests: {…}, total: {bytes, mb}}` from D1 (live rows only)."""
    db = platform.db
    statements: list[Statement] = [
        db.prepare(
            f"SELECT COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM {kind.table} "
            "WHERE user_id = ? AND state = 'live'"
        ).bind(user_id)
        for kind in (BLOBS, MANIFESTS)
    ]
    blobs, manifests = (result.results[0] for result in await db.batch(statements))

    def usage(row: dict[str, Any]) -> dict[str, Any]:
        return {"count": int(row["count"]), "bytes": int(row["bytes"]), "mb": in_mib(int(row["bytes"]))}

    total = int(blobs["bytes"]) + int(manifests["bytes"])
    return {"blobs": usage(blobs), "manifests": usage(manifests), "total": {"bytes": total, "mb": in_mib(total)}}
