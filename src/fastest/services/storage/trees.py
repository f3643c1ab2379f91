"""Server-side reads and writes of whole objects and trees: parsed manifests for tree walks, a
blob's bytes, trees the server rebuilds itself (merges, file edits), and file counts."""

from __future__ import annotations

import logging
from typing import Mapping

from fastest.domain.manifest import (
    Manifest,
    ManifestError,
    is_sha256_hex,
    parse_stored_manifest,
)
from fastest.domain.tree import (
    FileRecord,
    ManifestLoader,
    directories_on_paths,
    rebuild_manifests,
)
from fastest.errors import Internal, NotFound
from fastest.platform import Platform
from fastest.services.storage.batches import (
    BATCH_GROUP_FRAMES,
    BatchOutcome,
    check_blob_frame,
    check_manifest_frame,
    store_group,
)
from fastest.services.storage.objects import BLOBS, MANIFESTS, too_large

log = logging.getLogger("fastest.storage")

# A tree walk that counts files stops after this many directories (a crafted tree that reuses one
# subtree at every level would otherwise expand exponentially).
FILE_COUNT_MAX_DIRECTORIES = 1_000_000


async def read_manifest(platform: Platform, user_id: str, manifest_hash: str) -> Manifest:
    """A stored manifest, parsed (for tree walks: drift, compare, docs, merge). 404 if absent.

    Reads R2 only (no D1): callers walk thousands of manifests. The bytes are re-hashed, so a
    corrupt object is an error (500) rather than a wrong tree.
    """
    if not is_sha256_hex(manifest_hash):
        raise NotFound("Manifest not found.")
    body = await platform.blobs.get(MANIFESTS.key(user_id, manifest_hash))
    if body is None:
        raise NotFound("Manifest not found.", extra={"hash": manifest_hash})
    data = await body.read()
    try:
        # Validated in full on upload; the hash check proves these are those bytes (and is several
        # times cheaper than validating again, which a 100,000-file diff would pay ~2,000 times).
        return parse_stored_manifest(data, manifest_hash)
    except (ManifestError, ValueError, KeyError) as exc:
        log.error("stored manifest %s of user %s is corrupt: %s", manifest_hash, user_id, exc)
        raise Internal("A stored manifest is corrupt.") from exc


def manifest_loader(platform: Platform, user_id: str) -> ManifestLoader:
    """`read_manifest` for this user, as the tree walks (`domain.tree`, `domain.merge`) take it."""

    async def load(manifest_hash: str) -> Manifest:
        return await read_manifest(platform, user_id, manifest_hash)

    return load


async def store_changed_tree(platform: Platform, user_id: str, root: str,
                             changes: Mapping[str, FileRecord | None]) -> str:
    """Store the tree `root` with `changes` applied (path → new file record, or None to delete) and
    return its root. Only the directories on changed paths are read and rebuilt
    (`tree.rebuild_manifests`); raises ManifestError when the changes do not make a tree."""

    async def load_bytes(manifest_hash: str) -> bytes:
        return await read_manifest_bytes(platform, user_id, manifest_hash)

    old = await directories_on_paths(root, changes.keys(), load_bytes)
    rebuilt = rebuild_manifests(root, old, changes)
    await store_objects(platform, user_id, manifests=rebuilt.manifests)
    return rebuilt.root


async def read_manifest_bytes(platform: Platform, user_id: str, manifest_hash: str) -> bytes:
    """A stored manifest's canonical bytes, hash-checked (to rebuild a tree from). 404 if absent."""
    manifest = await read_manifest(platform, user_id, manifest_hash)
    return manifest.canonical_bytes()


async def store_objects(platform: Platform, user_id: str, *, blobs: Mapping[str, bytes] = {},
                        manifests: Mapping[str, bytes] = {}) -> None:
    """Store blobs and manifests the server made itself (merged files, rebuilt trees), as a batch
    upload would: hash-checked, recorded in D1 (manifests with their edges). Blobs go first, and
    manifests in the order given (children before parents). 409 if GC is deleting one of them."""
    for kind, objects, check in ((BLOBS, blobs, check_blob_frame), (MANIFESTS, manifests, check_manifest_frame)):
        frames = []
        for object_hash, data in objects.items():
            checked = check(object_hash, data)
            if isinstance(checked, str):
                raise Internal(f"The server built an invalid {kind.noun} ({checked}).")
            frames.append(checked)
        outcome = BatchOutcome(stored=[], existing=[], rejected=[], handled=set())
        for start in range(0, len(frames), BATCH_GROUP_FRAMES):
            await store_group(platform, kind, user_id, frames[start : start + BATCH_GROUP_FRAMES], outcome,
                               metered=False)
        if outcome.rejected:
            raise kind.being_collected(outcome.rejected[0]["hash"])


async def read_blob(platform: Platform, user_id: str, blob_hash: str, *, max_bytes: int | None = None) -> bytes:
    """A stored blob's bytes, read whole (for docs content and merges). 404 if absent; 413 if it is
    larger than `max_bytes` (default: the blob size limit), checked before reading."""
    limit = platform.settings.blob_max_bytes if max_bytes is None else max_bytes
    if not is_sha256_hex(blob_hash):
        raise NotFound("Blob not found.")
    body = await platform.blobs.get(BLOBS.key(user_id, blob_hash))
    if body is None:
        raise NotFound("Blob not found.", extra={"hash": blob_hash})
    if body.info.size > limit:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        raise too_large(limit, "blob")
    return await body.read()


async def file_count(platform: Platform, user_id: str, manifest_hash: str | None) -> int:
    """How many files the tree rooted at `manifest_hash` holds (0 for None), from manifest_edges.

    Counts entries, not distinct contents: two files with the same bytes count twice, and so does a
    subdirectory that appears twice. Subtrees whose manifests were never uploaded count as empty.
    """
    if manifest_hash is None:
        return 0
    count = await platform.db.prepare(
        "WITH RECURSIVE walk(hash, copies) AS ("
        " SELECT ?1, 1"
        " UNION ALL"
        " SELECT e.child_hash, w.copies * e.entries FROM walk w JOIN manifest_edges e"
        "  ON e.user_id = ?2 AND e.parent_hash = w.hash AND e.child_type = 'tree'"
        " LIMIT ?3"
        ") "
        "SELECT COALESCE(SUM(w.copies * e.entries), 0) AS n FROM walk w JOIN manifest_edges e"
        " ON e.user_id = ?2 AND e.parent_hash = w.hash AND e.child_type = 'blob'"
    ).bind(manifest_hash, user_id, FILE_COUNT_MAX_DIRECTORIES).first("n")
    return int(count or 0)
