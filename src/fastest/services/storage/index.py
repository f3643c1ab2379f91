"""The D1 index of stored objects (`blob_refs`, `manifests`, `manifest_edges`): touch-as-check, the
one way to rely on an existing row, and recording objects just written to R2 (manifests with their
edges, in one transaction)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from fastest.domain.manifest import Manifest
from fastest.platform import Platform
from fastest.services.common import dumps
from fastest.services.storage.objects import Frame, Kind, claim_expired, in_chunks

HASHES_PER_STATEMENT = 1000
EDGES_PER_STATEMENT = 5000


# --------------------------------------------------------------------------------------------------
# Touch-as-check: the one way to rely on an existing row
# --------------------------------------------------------------------------------------------------


async def touch_live(platform: Platform, kind: Kind, user_id: str, object_hash: str, now: str) -> int | None:
    """Touch the row if it is live and return the object's size; None if it is not stored.

    A row GC is deleting is a 409 (retry shortly), unless the run that condemned it has certainly
    died: then this finishes that deletion and answers None, so the caller stores the object anew.
    """
    db = platform.db
    touched = await db.prepare(
        f"UPDATE {kind.table} SET touched_at = ? WHERE user_id = ? AND hash = ? AND state = 'live' RETURNING size"
    ).bind(now, user_id, object_hash).all()
    if touched.results:
        return int(touched.results[0]["size"])
    row = await db.prepare(
        f"SELECT state, size, deleting_since FROM {kind.table} WHERE user_id = ? AND hash = ?"
    ).bind(user_id, object_hash).first()
    if row is None:
        return None
    if row["state"] == "live":  # a concurrent upload recorded it between our two statements
        return int(row["size"])
    if not claim_expired(platform, row["deleting_since"]):
        raise kind.being_collected(object_hash)
    await finish_abandoned_deletion(platform, kind, user_id, object_hash)
    return None


async def finish_abandoned_deletion(platform: Platform, kind: Kind, user_id: str, object_hash: str) -> None:
    """Complete what a dead GC run started for one object: delete it from R2, then its row."""
    await platform.blobs.delete(kind.key(user_id, object_hash))
    await platform.db.prepare(
        f"DELETE FROM {kind.table} WHERE user_id = ? AND hash = ? AND state = 'deleting'"
    ).bind(user_id, object_hash).run()


async def touch_many(platform: Platform, kind: Kind, user_id: str, hashes: Sequence[str], now: str) -> set[str]:
    """Touch the live rows among `hashes` (one statement per 1,000) and return their hashes."""
    db = platform.db
    statements = [
        db.prepare(
            f"UPDATE {kind.table} SET touched_at = ? WHERE user_id = ? AND state = 'live' "
            "AND hash IN (SELECT value FROM json_each(?)) RETURNING hash"
        ).bind(now, user_id, dumps(list(chunk)))
        for chunk in in_chunks(hashes, HASHES_PER_STATEMENT)
    ]
    if not statements:
        return set()
    results = await db.batch(statements)
    return {row["hash"] for result in results for row in result.results}


async def record_blobs(platform: Platform, user_id: str, items: Sequence[tuple[str, int]], now: str) -> set[str]:
    """Upsert blob_refs rows for objects just written to R2; return the hashes now recorded live.

    A hash missing from the answer has a row GC is deleting (its object may be gone any moment): the
    caller reports it as not stored.
    """
    db = platform.db
    statements = [
        db.prepare(
            "INSERT INTO blob_refs (user_id, hash, size, uploaded_at, touched_at) "
            "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?, ? FROM json_each(?) WHERE true "
            "ON CONFLICT (user_id, hash) DO UPDATE SET touched_at = excluded.touched_at "
            "WHERE blob_refs.state = 'live' RETURNING hash"
        ).bind(user_id, now, now, dumps([[h, size] for h, size in chunk]))
        for chunk in in_chunks(items, HASHES_PER_STATEMENT)
    ]
    if not statements:
        return set()
    results = await db.batch(statements)
    return {row["hash"] for result in results for row in result.results}


def manifest_edge_rows(manifest: Manifest) -> list[list[Any]]:
    """[[child_type, child_hash, entries], …]: one edge per distinct child, with its multiplicity."""
    counts = Counter(("tree" if e.is_tree else "blob", e.hash) for e in manifest.entries)
    return [[child_type, child_hash, n] for (child_type, child_hash), n in sorted(counts.items())]


async def record_manifests(platform: Platform, user_id: str, frames: Sequence["Frame"], now: str) -> set[str]:
    """Record manifests just written to R2 and their edges, in ONE batch (one transaction), so no
    manifest is ever live without its edges; return the hashes now recorded live (a missing one has
    a row GC is deleting).

    Rows go in 1,000 per statement and edges 5,000 per statement whatever the directory sizes: each
    list travels as one JSON value, so a statement binds at most 4 parameters (D1 allows 100). The
    rows come first: an edge's parent row must exist (foreign key).
    """
    if not frames:
        return set()
    db = platform.db
    rows = [
        db.prepare(
            "INSERT INTO manifests (user_id, hash, size, uploaded_at, touched_at) "
            "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?, ? FROM json_each(?) WHERE true "
            "ON CONFLICT (user_id, hash) DO UPDATE SET touched_at = excluded.touched_at "
            "WHERE manifests.state = 'live' RETURNING hash"
        ).bind(user_id, now, now, dumps([[f.hash, len(f.data)] for f in chunk]))
        for chunk in in_chunks(frames, HASHES_PER_STATEMENT)
    ]
    edge_rows = [[f.hash, *edge] for f in frames for edge in (f.edges or ())]
    edges = [
        db.prepare(
            "INSERT INTO manifest_edges (user_id, parent_hash, child_type, child_hash, entries) "
            "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
            "json_extract(value, '$[3]') FROM json_each(?) WHERE true ON CONFLICT DO NOTHING"
        ).bind(user_id, dumps(list(chunk)))
        for chunk in in_chunks(edge_rows, EDGES_PER_STATEMENT)
    ]
    results = await db.batch([*rows, *edges])
    return {row["hash"] for result in results[: len(rows)] for row in result.results}


async def put_object(platform: Platform, kind: Kind, user_id: str, frame: "Frame") -> None:
    await platform.blobs.put(
        kind.key(user_id, frame.hash), frame.data, custom_metadata={"sha256": frame.hash}, content_type=kind.content_type
    )
