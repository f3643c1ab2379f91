"""Content-addressed storage: each user's blobs and manifests, their D1 index, closures and GC.

Bodies live in R2 under `{user_id}/blobs/{sha256}` and `{user_id}/manifests/{sha256}`; the rows of
`blob_refs`, `manifests` and `manifest_edges` (migrations 0002, 0003) are the index that answers
`exists`, stats, closure checks and GC with queries instead of R2 scans. Keys and queries are always
scoped by user, so another user's hash is simply not there (404 / "missing").

**Order of writes.** An object is written to R2 first (atomically: a put that fails, including on a
hash mismatch detected at the end of the stream, leaves nothing visible) and recorded in D1 second.
A crash in between leaves an unrecorded object, which is harmless (the next upload of that hash
writes it again and records it); the other order could record a blob that does not exist.

**GC safety.** A row is `live` or `deleting`. GC marks and condemns in one atomic D1 batch: rows that
are unreachable from every root **and** untouched for the grace period flip to `deleting`; only then
are the R2 objects deleted, then the rows. Everything that relies on a row *touches* it with a
conditional `UPDATE … WHERE state = 'live'` that is also the existence check (exists, uploads of a
known hash, closure checks), so each such operation is ordered against the flip: either it touched
first (and the flip's re-check skips the row) or the flip came first (and it sees the row as missing
and says so). Roots are every snapshot's manifest, every workspace's current manifest, and every
manifest touched within the grace period — so touching a snapshot's root manifest protects its whole
closure.

**Batches.** `store_batch` (blobs) and `store_manifest_batch` (manifests) read the same frames
`<64 hex hash><8 hex length><bytes>` with one reader and handle them in groups: one D1 batch checks a
group, its new objects go to R2, one more D1 batch records them (manifests with their edges). A
batch download (`open_blob_batch`) looks every hash up first, then streams the objects one by one.

**Closure invariant.** A live manifest with `closure_verified_at` set has its whole closure live.
Closure checks rely on it to skip verified subtrees; GC keeps it by clearing the mark, in the same
batch as the flip, on every unreachable manifest it does not condemn (with `maxBlobs` a run may
condemn a blob and leave its parent manifest for the next run).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Callable, Iterable, Mapping, NamedTuple, Sequence

from fastest.domain.ids import iso, parse_iso
from fastest.domain.tree import FileRecord, ManifestLoader, directories_on_paths, rebuild_manifests
from fastest.domain.manifest import (
    Manifest,
    ManifestError,
    is_sha256_hex,
    parse_manifest,
    parse_stored_manifest,
    sha256_hex,
)
from fastest.errors import ApiError, Conflict, Internal, NotFound, PayloadTooLarge, ValidationFailed
from fastest.platform import Platform
from fastest.ports import D1_MAX_VALUE_BYTES, BlobBody, ByteRange, Statement
from fastest.services import entitlements
from fastest.services.common import dumps

log = logging.getLogger("fastest.storage")

# A manifest is one directory. Its body is bounded by D1's value limit: it is read whole (to verify
# and parse), and its edge list is bound as JSON values in one batch.
MANIFEST_MAX_BYTES = D1_MAX_VALUE_BYTES
# How many missing hashes a closure check lists (the count is always exact).
MISSING_REPORT_LIMIT = 1000
# A GC run deletes what it condemned itself. Rows another run left in 'deleting' are finished (by
# GC or by an upload of that hash) only after this long, by when that run has certainly stopped:
# a run stops deleting after GC_TIME_BUDGET_SECONDS, well inside the timeout.
GC_CLAIM_TIMEOUT_SECONDS = 15 * 60
GC_TIME_BUDGET_SECONDS = GC_CLAIM_TIMEOUT_SECONDS // 3
# Most blobs (and, separately, manifests) one GC run collects for one user when not told otherwise.
GC_DEFAULT_MAX_BLOBS = 10_000
# How long a client should wait before retrying an upload of a hash that GC is deleting.
RETRY_AFTER_SECONDS = 5
# R2 deletes at most 1,000 keys per call; JSON lists bound as one D1 value stay far below 2 MB.
R2_DELETE_CHUNK = 1000
HASHES_PER_STATEMENT = 1000
EDGES_PER_STATEMENT = 5000
# A batch upload records blobs in D1 and checks them in groups, so memory holds one group at a time.
BATCH_GROUP_FRAMES = 100
BATCH_GROUP_BYTES = 4 * 1024 * 1024
BATCH_PUT_CONCURRENCY = 8
BATCH_HEADER_BYTES = 64 + 8
# A batch download answers at most this many bytes of blobs (or one blob of the blob size limit, if
# that is more); the sizes are known from blob_refs before anything is sent. The existence lookup
# takes the hashes 100 at a time (one statement each, all in one D1 batch).
DOWNLOAD_BATCH_MAX_BYTES = 64 * 1024 * 1024
DOWNLOAD_LOOKUP_CHUNK = 100
# The streamed answer goes out in pieces of about this size (frame headers joined to their bodies).
DOWNLOAD_STREAM_PIECE_BYTES = 64 * 1024
# A tree walk that counts files stops after this many directories (a crafted tree that reuses one
# subtree at every level would otherwise expand exponentially).
FILE_COUNT_MAX_DIRECTORIES = 1_000_000
MIB = 1024 * 1024


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class HashMismatch(ValidationFailed):
    code, title = "hash_mismatch", "Hash mismatch"


class BeingCollected(Conflict):
    code, title = "blob_being_collected", "Being garbage-collected"


class RangeNotSatisfiable(ApiError):
    status, code, title = 416, "range_not_satisfiable", "Range not satisfiable"


def _too_large(limit: int, what: str = "request body") -> PayloadTooLarge:
    return PayloadTooLarge(f"The {what} exceeds the limit of {limit} bytes.", extra={"limit_bytes": limit})


def _mismatch(expected: str, actual: str, size: int) -> HashMismatch:
    return HashMismatch(
        f"The SHA-256 of the {size} bytes received is {actual}, not {expected}. Nothing was stored.",
        fields={"hash": "does not match the body"},
        extra={"expected_hash": expected, "actual_hash": actual, "size": size},
    )


# --------------------------------------------------------------------------------------------------
# The two kinds of object
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    table: str  # a fixed table name, never input
    folder: str
    noun: str
    busy_code: str
    content_type: str

    def key(self, user_id: str, object_hash: str) -> str:
        return f"{user_id}/{self.folder}/{object_hash}"

    def being_collected(self, object_hash: str) -> BeingCollected:
        return BeingCollected(
            f"This {self.noun} is being garbage-collected; upload it again in a few seconds.",
            code=self.busy_code,
            extra={"hash": object_hash},
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


BLOBS = _Kind("blob_refs", "blobs", "blob", "blob_being_collected", "application/octet-stream")
MANIFESTS = _Kind("manifests", "manifests", "manifest", "manifest_being_collected", "application/json")
# Rejection codes of a batch frame that mean "send it again in RETRY_AFTER_SECONDS".
BEING_COLLECTED_CODES = frozenset({BLOBS.busy_code, MANIFESTS.busy_code})


def blob_key(user_id: str, blob_hash: str) -> str:
    return BLOBS.key(user_id, blob_hash)


def manifest_key(user_id: str, manifest_hash: str) -> str:
    return MANIFESTS.key(user_id, manifest_hash)


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _now(platform: Platform) -> str:
    return iso(platform.clock.now())


def _ago(platform: Platform, seconds: int) -> str:
    return iso(platform.clock.now() - timedelta(seconds=seconds))


def _mb(size: int) -> float:
    return round(size / MIB, 2)


def _chunked(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _claim_expired(platform: Platform, deleting_since: str | None) -> bool:
    """Whether a 'deleting' row was left by a GC run that has certainly stopped."""
    if deleting_since is None:
        return True
    return parse_iso(deleting_since) <= platform.clock.now() - timedelta(seconds=GC_CLAIM_TIMEOUT_SECONDS)


def _check_declared_length(declared_length: int | None, limit: int, what: str) -> None:
    if declared_length is not None and declared_length > limit:
        raise _too_large(limit, what)


async def _drain(body: AsyncIterator[bytes], limit: int) -> None:
    """Read and drop a body we do not need (the object is already stored), still bounded."""
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)


async def _read_all(body: AsyncIterator[bytes], limit: int, what: str) -> bytes:
    parts: list[bytes] = []
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit, what)
        parts.append(chunk)
    return b"".join(parts)


async def _verified(body: AsyncIterator[bytes], expected: str, limit: int) -> AsyncIterator[bytes]:
    """Pass the body through while hashing and counting it; raise at the end on a mismatch.

    The BlobStore consumes this iterator inside its atomic put, so raising (too large, mismatch, or
    the client going away mid-stream) aborts the put and nothing becomes visible.
    """
    digest = hashlib.sha256()
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, "blob")
        digest.update(chunk)
        yield chunk
    actual = digest.hexdigest()
    if actual != expected:
        raise _mismatch(expected, actual, size)


# --------------------------------------------------------------------------------------------------
# Touch-as-check: the one way to rely on an existing row
# --------------------------------------------------------------------------------------------------


async def _touch_live(platform: Platform, kind: _Kind, user_id: str, object_hash: str, now: str) -> int | None:
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
    if not _claim_expired(platform, row["deleting_since"]):
        raise kind.being_collected(object_hash)
    await _finish_abandoned_deletion(platform, kind, user_id, object_hash)
    return None


async def _finish_abandoned_deletion(platform: Platform, kind: _Kind, user_id: str, object_hash: str) -> None:
    """Complete what a dead GC run started for one object: delete it from R2, then its row."""
    await platform.blobs.delete(kind.key(user_id, object_hash))
    await platform.db.prepare(
        f"DELETE FROM {kind.table} WHERE user_id = ? AND hash = ? AND state = 'deleting'"
    ).bind(user_id, object_hash).run()


async def _touch_many(platform: Platform, kind: _Kind, user_id: str, hashes: Sequence[str], now: str) -> set[str]:
    """Touch the live rows among `hashes` (one statement per 1,000) and return their hashes."""
    db = platform.db
    statements = [
        db.prepare(
            f"UPDATE {kind.table} SET touched_at = ? WHERE user_id = ? AND state = 'live' "
            "AND hash IN (SELECT value FROM json_each(?)) RETURNING hash"
        ).bind(now, user_id, dumps(list(chunk)))
        for chunk in _chunked(hashes, HASHES_PER_STATEMENT)
    ]
    if not statements:
        return set()
    results = await db.batch(statements)
    return {row["hash"] for result in results for row in result.results}


async def _record_blobs(platform: Platform, user_id: str, items: Sequence[tuple[str, int]], now: str) -> set[str]:
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
        for chunk in _chunked(items, HASHES_PER_STATEMENT)
    ]
    if not statements:
        return set()
    results = await db.batch(statements)
    return {row["hash"] for result in results for row in result.results}


# --------------------------------------------------------------------------------------------------
# exists / presign
# --------------------------------------------------------------------------------------------------


async def _exists(platform: Platform, kind: _Kind, user_id: str, hashes: Sequence[str]) -> dict[str, Any]:
    unique = list(dict.fromkeys(hashes))
    found = await _touch_many(platform, kind, user_id, unique, _now(platform))
    return {
        "missing": [h for h in unique if h not in found],
        "existing": [h for h in unique if h in found],
        "checked": len(unique),
    }


async def blobs_exist(platform: Platform, user_id: str, hashes: Sequence[str]) -> dict[str, Any]:
    """`{missing, existing, checked}` for up to 100 hashes, in one statement.

    The existing ones are touched: a client that skips re-uploading them relies on them, so GC must
    keep them for the grace period. A blob GC is deleting counts as missing (re-uploading it waits
    for the deletion to finish, see `upload_blob`).
    """
    return await _exists(platform, BLOBS, user_id, hashes)


async def manifests_exist(platform: Platform, user_id: str, hashes: Sequence[str]) -> dict[str, Any]:
    """Like `blobs_exist`, for manifests. A touched manifest is a GC root for the grace period."""
    return await _exists(platform, MANIFESTS, user_id, hashes)


async def manifest_exists(platform: Platform, user_id: str, manifest_hash: str) -> bool:
    """Whether this user has the manifest (live). Touches it: the caller is about to rely on it (e.g.
    point a workspace at it), and a touched manifest is a GC root for the grace period."""
    if not is_sha256_hex(manifest_hash):
        return False
    return bool(await _touch_many(platform, MANIFESTS, user_id, [manifest_hash], _now(platform)))


def upload_paths(hashes: Sequence[str]) -> dict[str, str]:
    """Worker-proxied upload paths (seed 001: not presigned URLs; the bearer token is still needed)."""
    return {h: f"/v1/blobs/upload/{h}" for h in dict.fromkeys(hashes)}


def download_paths(hashes: Sequence[str]) -> dict[str, str]:
    """Download paths for every hash asked for, without a lookup: a path is not a capability, and a
    hash that is not stored is a 404 when fetched."""
    return {h: f"/v1/blobs/download/{h}" for h in dict.fromkeys(hashes)}


# --------------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlobUpload:
    """What `prepare_upload` decided for one blob: already stored (`stored_size` set: answer 200 and
    leave the body unread), or to be written under `key` and then recorded with `record_upload`."""

    hash: str
    key: str
    limit: int
    now: str
    stored_size: int | None

    @property
    def already_stored(self) -> bool:
        return self.stored_size is not None

    @property
    def custom_metadata(self) -> dict[str, str]:
        return {"sha256": self.hash}

    content_type = BLOBS.content_type

    def existing(self) -> dict[str, Any]:
        """The answer for a blob that was already stored (`created: false`)."""
        assert self.stored_size is not None
        return {"hash": self.hash, "size": self.stored_size, "created": False}


async def prepare_upload(
    platform: Platform, user_id: str, blob_hash: str, *, declared_length: int | None = None
) -> BlobUpload:
    """The checks before a blob's body is read: a declared length over the blob limit is a 413; a
    stored hash is touched (so GC keeps it) and reported as such; one GC is deleting is a 409."""
    limit = platform.settings.blob_max_bytes
    _check_declared_length(declared_length, limit, "blob")
    now = _now(platform)
    size = await _touch_live(platform, BLOBS, user_id, blob_hash, now)
    if size is None:  # a new blob: the plan's storage limit (billing hook)
        await entitlements.require(platform, user_id, "storage_bytes", adding=declared_length or 0)
    return BlobUpload(hash=blob_hash, key=BLOBS.key(user_id, blob_hash), limit=limit, now=now, stored_size=size)


async def record_upload(platform: Platform, user_id: str, upload: BlobUpload, size: int) -> dict[str, Any]:
    """Record a blob just written to R2 (`{hash, size, created: true}`); 409 if GC is deleting it."""
    if upload.hash not in await _record_blobs(platform, user_id, [(upload.hash, size)], upload.now):
        raise BLOBS.being_collected(upload.hash)
    return {"hash": upload.hash, "size": size, "created": True}


def checksum_mismatch(expected: str, size: int | None) -> HashMismatch:
    """The 422 for a body the BlobStore itself refused because its SHA-256 is not `expected` (R2's
    checksum check), when the actual hash is not known to us."""
    return HashMismatch(
        f"The SHA-256 of the body received is not {expected}. Nothing was stored.",
        fields={"hash": "does not match the body"},
        extra={"expected_hash": expected, **({"size": size} if size is not None else {})},
    )


async def upload_blob(
    platform: Platform, user_id: str, blob_hash: str, body: AsyncIterator[bytes], *, declared_length: int | None = None
) -> dict[str, Any]:
    """Store one blob from a streamed body: `{hash, size, created}`.

    A stored hash is touched and its body is drained unread (200, `created: false`). Otherwise the
    body streams into R2 through `_verified` (hash and size checked on the way), so a mismatch, an
    oversize body or a broken stream leaves nothing behind; then the row is recorded. (The Worker's
    streaming path, `platform.cloudflare.blob_stream`, runs the same two steps around an R2 put.)
    """
    upload = await prepare_upload(platform, user_id, blob_hash, declared_length=declared_length)
    if upload.already_stored:
        await _drain(body, upload.limit)
        return upload.existing()
    info = await platform.blobs.put(
        upload.key,
        _verified(body, blob_hash, upload.limit),
        custom_metadata=upload.custom_metadata,
        content_type=upload.content_type,
    )
    return await record_upload(platform, user_id, upload, info.size)


def _edge_rows(manifest: Manifest) -> list[list[Any]]:
    """[[child_type, child_hash, entries], …]: one edge per distinct child, with its multiplicity."""
    counts = Counter(("tree" if e.is_tree else "blob", e.hash) for e in manifest.entries)
    return [[child_type, child_hash, n] for (child_type, child_hash), n in sorted(counts.items())]


def _parse_uploaded_manifest(data: bytes) -> Manifest:
    try:
        return parse_manifest(data)
    except ManifestError as exc:
        raise ValidationFailed(str(exc), code=exc.code, fields={exc.field: str(exc)}) from exc


async def upload_manifest(
    platform: Platform,
    user_id: str,
    manifest_hash: str,
    body: AsyncIterator[bytes],
    *,
    declared_length: int | None = None,
) -> dict[str, Any]:
    """Store one manifest: `{hash, created}`.

    The body must hash to `manifest_hash` and be a canonical manifest (`domain.manifest`). Its row and
    its edges are recorded in one batch, so a manifest is never live without its edges. Children may
    be uploaded in any order: a tree entry pointing at a manifest not uploaded yet is accepted here,
    and the closure check of a snapshot reports what is still missing.
    """
    _check_declared_length(declared_length, MANIFEST_MAX_BYTES, "manifest")
    now = _now(platform)
    if await _touch_live(platform, MANIFESTS, user_id, manifest_hash, now) is not None:
        await _drain(body, MANIFEST_MAX_BYTES)
        return {"hash": manifest_hash, "created": False}
    data = await _read_all(body, MANIFEST_MAX_BYTES, "manifest")
    actual = sha256_hex(data)
    if actual != manifest_hash:
        raise _mismatch(manifest_hash, actual, len(data))
    manifest = _parse_uploaded_manifest(data)
    await entitlements.require(platform, user_id, "storage_bytes", adding=len(data))  # billing hook
    frame = _Frame(manifest_hash, data, _edge_rows(manifest))
    await _put_object(platform, MANIFESTS, user_id, frame)
    if manifest_hash not in await _record_manifests(platform, user_id, [frame], now):
        raise MANIFESTS.being_collected(manifest_hash)  # the row exists and GC is deleting it
    return {"hash": manifest_hash, "created": True}


async def _record_manifests(platform: Platform, user_id: str, frames: Sequence["_Frame"], now: str) -> set[str]:
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
        for chunk in _chunked(frames, HASHES_PER_STATEMENT)
    ]
    edge_rows = [[f.hash, *edge] for f in frames for edge in (f.edges or ())]
    edges = [
        db.prepare(
            "INSERT INTO manifest_edges (user_id, parent_hash, child_type, child_hash, entries) "
            "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
            "json_extract(value, '$[3]') FROM json_each(?) WHERE true ON CONFLICT DO NOTHING"
        ).bind(user_id, dumps(list(chunk)))
        for chunk in _chunked(edge_rows, EDGES_PER_STATEMENT)
    ]
    results = await db.batch([*rows, *edges])
    return {row["hash"] for result in results[: len(rows)] for row in result.results}


async def _put_object(platform: Platform, kind: _Kind, user_id: str, frame: "_Frame") -> None:
    await platform.blobs.put(
        kind.key(user_id, frame.hash), frame.data, custom_metadata={"sha256": frame.hash}, content_type=kind.content_type
    )


# --------------------------------------------------------------------------------------------------
# Batch uploads: many small blobs, or many manifests, in one request
# --------------------------------------------------------------------------------------------------


class _BodyReader:
    """Exact-size reads over a chunked body, counting every byte against a limit."""

    def __init__(self, body: AsyncIterator[bytes], limit: int) -> None:
        self._chunks = body.__aiter__()
        self._buffer = bytearray()
        self._ended = False
        self.limit = limit
        self.received = 0

    @property
    def position(self) -> int:
        """Bytes of the body consumed by reads so far."""
        return self.received - len(self._buffer)

    async def _fill(self) -> bool:
        if self._ended:
            return False
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._ended = True
            return False
        self.received += len(chunk)
        if self.received > self.limit:
            raise _too_large(self.limit)
        self._buffer += chunk
        return True

    async def read(self, size: int) -> bytes:
        """`size` bytes, or fewer only where the body ends."""
        while len(self._buffer) < size and await self._fill():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def skip(self, size: int) -> int:
        """Drop the next `size` bytes without keeping them; returns how many there were."""
        skipped = 0
        while True:
            taken = min(size - skipped, len(self._buffer))
            del self._buffer[:taken]
            skipped += taken
            if skipped == size or not await self._fill():
                return skipped


class _Frame(NamedTuple):
    hash: str
    data: bytes
    edges: list[list[Any]] | None = None  # a manifest's edge rows (`_edge_rows`)


class _InvalidFraming(Exception):
    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


_HEX_LOWER = frozenset(b"0123456789abcdef")
_HEX_ANY = frozenset(b"0123456789abcdefABCDEF")


async def _read_frame_header(reader: _BodyReader, index: int) -> tuple[str, int] | None:
    header = await reader.read(BATCH_HEADER_BYTES)
    if not header:
        return None
    if len(header) < BATCH_HEADER_BYTES:
        raise _InvalidFraming(index, f"the body ends inside frame {index}'s {BATCH_HEADER_BYTES}-byte header")
    hash_part, length_part = header[:64], header[64:]
    if not set(hash_part) <= _HEX_LOWER:
        raise _InvalidFraming(index, "a frame starts with the object's SHA-256 as 64 lowercase hex digits")
    if not set(length_part) <= _HEX_ANY:
        raise _InvalidFraming(index, "the hash is followed by the body length as 8 hex digits")
    return hash_part.decode("ascii"), int(length_part, 16)


async def _read_frames(
    reader: _BodyReader, max_frames: int, max_frame_bytes: int | None
) -> AsyncIterator[tuple[str, bytes | None]]:
    """The frames of a batch body as they arrive: (hash, bytes), or (hash, None) for a frame longer
    than `max_frame_bytes` (skipped unread). Raises `_InvalidFraming` where the framing breaks and
    413 as soon as the frames announce more than the body limit."""
    index = 0
    while (header := await _read_frame_header(reader, index)) is not None:
        frame_hash, length = header
        if index >= max_frames:
            raise _InvalidFraming(index, f"at most {max_frames} frames per batch")
        if reader.position + length > reader.limit:
            raise _too_large(reader.limit)
        oversize = max_frame_bytes is not None and length > max_frame_bytes
        data = None if oversize else await reader.read(length)
        received = await reader.skip(length) if data is None else len(data)
        if received < length:
            raise _InvalidFraming(index, f"the body ends {length - received} bytes into frame {index}")
        index += 1
        yield frame_hash, data


@dataclass
class _BatchOutcome:
    stored: list[str]
    existing: list[str]
    rejected: list[dict[str, str]]
    handled: set[str]

    def to_json(self) -> dict[str, Any]:
        return {"stored": self.stored, "existing": self.existing, "rejected": self.rejected}


# Checks one complete frame: the frame to store, or the code it is rejected with.
_FrameCheck = Callable[[str, bytes], "_Frame | str"]


def _check_blob_frame(frame_hash: str, data: bytes) -> _Frame | str:
    return _Frame(frame_hash, data) if sha256_hex(data) == frame_hash else "hash_mismatch"


def _check_manifest_frame(frame_hash: str, data: bytes) -> _Frame | str:
    """The checks of `PUT /manifests/{hash}`: the hash, then the canonical format."""
    if sha256_hex(data) != frame_hash:
        return "hash_mismatch"
    try:
        manifest = parse_manifest(data)
    except ManifestError as exc:
        return exc.code
    return _Frame(frame_hash, data, _edge_rows(manifest))


async def store_batch(
    platform: Platform, user_id: str, body: AsyncIterator[bytes], *, declared_length: int | None = None
) -> dict[str, Any]:
    """Store many blobs sent as frames `<64 hex hash><8 hex length><bytes>`; `{stored, existing, rejected}`.

    The body is parsed as it arrives. Each frame is verified on its own: a frame whose bytes do not
    hash to its hash is rejected (`hash_mismatch`) and the others go on. Each hash is listed once.
    Broken framing (a bad header, a body that ends inside a frame, more frames than allowed) makes
    the request a 422 `invalid_batch`; frames completed before the bad one are independently
    verified, so they stay stored, and the problem lists them (`stored`, `existing`, `rejected`).
    """
    return await _store_frames(platform, BLOBS, user_id, body, declared_length, _check_blob_frame, None)


async def store_manifest_batch(
    platform: Platform, user_id: str, body: AsyncIterator[bytes], *, declared_length: int | None = None
) -> dict[str, Any]:
    """Store many manifests sent as the frames of `store_batch`; `{stored, existing, rejected}`.

    Each frame is checked like `upload_manifest` (hash, canonical format; rejected with that code,
    or `payload_too_large` above the manifest limit, skipped unread) and recorded with its edges in
    the same transaction. Frames are handled in order, so children may precede their parents in one
    request. Limits and broken framing are those of `store_batch`.
    """
    return await _store_frames(
        platform, MANIFESTS, user_id, body, declared_length, _check_manifest_frame, MANIFEST_MAX_BYTES
    )


async def _store_frames(
    platform: Platform,
    kind: _Kind,
    user_id: str,
    body: AsyncIterator[bytes],
    declared_length: int | None,
    check: _FrameCheck,
    max_frame_bytes: int | None,
) -> dict[str, Any]:
    limit = platform.settings.blob_max_bytes
    max_frames = platform.settings.blob_batch_max_frames
    _check_declared_length(declared_length, limit, "batch")
    reader = _BodyReader(body, limit)
    outcome = _BatchOutcome(stored=[], existing=[], rejected=[], handled=set())
    group: list[_Frame] = []
    group_bytes = 0
    try:
        async for frame_hash, data in _read_frames(reader, max_frames, max_frame_bytes):
            if frame_hash in outcome.handled:
                continue
            checked = "payload_too_large" if data is None else check(frame_hash, data)
            if isinstance(checked, str):
                outcome.rejected.append({"hash": frame_hash, "code": checked})
                continue
            outcome.handled.add(frame_hash)
            group.append(checked)
            group_bytes += len(checked.data)
            if len(group) >= BATCH_GROUP_FRAMES or group_bytes >= BATCH_GROUP_BYTES:
                await _store_group(platform, kind, user_id, group, outcome)
                group, group_bytes = [], 0
    except _InvalidFraming as exc:
        await _store_group(platform, kind, user_id, group, outcome)
        raise ValidationFailed(
            f"The batch is malformed at frame {exc.index}: {exc.reason}. "
            "Frames before it were handled as listed; nothing after it was read.",
            code="invalid_batch",
            fields={f"frames.{exc.index}": exc.reason},
            extra=outcome.to_json(),
        ) from exc
    await _store_group(platform, kind, user_id, group, outcome)
    return outcome.to_json()


async def _store_group(
    platform: Platform, kind: _Kind, user_id: str, frames: Sequence[_Frame], outcome: _BatchOutcome,
    *, metered: bool = True,  # False: objects the server made itself (not held to the plan's limit)
) -> None:
    """Check a group of verified frames in one batch, put the new ones in R2, record them in one more."""
    if not frames:
        return
    db = platform.db
    now = _now(platform)
    hashes = dumps([f.hash for f in frames])
    touched, condemned = await db.batch(
        [
            db.prepare(
                f"UPDATE {kind.table} SET touched_at = ? WHERE user_id = ? AND state = 'live' "
                "AND hash IN (SELECT value FROM json_each(?)) RETURNING hash"
            ).bind(now, user_id, hashes),
            db.prepare(
                f"SELECT hash, deleting_since FROM {kind.table} WHERE user_id = ? AND state = 'deleting' "
                "AND hash IN (SELECT value FROM json_each(?))"
            ).bind(user_id, hashes),
        ]
    )
    live = {row["hash"] for row in touched.results}
    being_deleted = {row["hash"]: row["deleting_since"] for row in condemned.results}
    new: list[_Frame] = []
    for frame in frames:
        if frame.hash in live:
            outcome.existing.append(frame.hash)
        elif frame.hash in being_deleted and not _claim_expired(platform, being_deleted[frame.hash]):
            outcome.rejected.append({"hash": frame.hash, "code": kind.busy_code})
        else:
            if frame.hash in being_deleted:
                await _finish_abandoned_deletion(platform, kind, user_id, frame.hash)
            new.append(frame)
    if new and metered:  # the plan's storage limit (billing hook)
        await entitlements.require(platform, user_id, "storage_bytes", adding=sum(len(f.data) for f in new))
    for start in range(0, len(new), BATCH_PUT_CONCURRENCY):
        await asyncio.gather(
            *(_put_object(platform, kind, user_id, frame) for frame in new[start : start + BATCH_PUT_CONCURRENCY])
        )
    if kind is MANIFESTS:
        recorded = await _record_manifests(platform, user_id, new, now)
    else:
        recorded = await _record_blobs(platform, user_id, [(f.hash, len(f.data)) for f in new], now)
    for frame in new:
        if frame.hash in recorded:
            outcome.stored.append(frame.hash)
        else:
            outcome.rejected.append({"hash": frame.hash, "code": kind.busy_code})


# --------------------------------------------------------------------------------------------------
# Batch download: many blobs in one streamed answer
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchDownload:
    """What a batch download will send: the blobs found (in request order, each once), those this
    user does not have, their total size, and the frames as an async stream."""

    found: list[str]
    missing: list[str]
    total_bytes: int
    frames: AsyncIterator[bytes]


async def open_blob_batch(
    platform: Platform, user_id: str, hashes: Sequence[str], *, kind: _Kind = BLOBS
) -> BatchDownload:
    """Look the blobs (or, with `kind=MANIFESTS`, the manifests) up first (one statement per 100 hashes, one D1 batch), so the missing ones are
    known before anything is sent, and refuse (422 `batch_too_large`) an answer whose size would pass
    DOWNLOAD_BATCH_MAX_BYTES. The frames then stream object by object from the BlobStore; an object
    GC deletes between the lookup and its turn is left out (the client sees it missing)."""
    unique = list(dict.fromkeys(hashes))
    db = platform.db
    results = await db.batch(
        [
            db.prepare(
                f"SELECT hash, size FROM {kind.table} WHERE user_id = ? AND state = 'live' "
                "AND hash IN (SELECT value FROM json_each(?))"
            ).bind(user_id, dumps(list(chunk)))
            for chunk in _chunked(unique, DOWNLOAD_LOOKUP_CHUNK)
        ]
    )
    sizes = {row["hash"]: int(row["size"]) for result in results for row in result.results}
    found = [h for h in unique if h in sizes]
    total = sum(sizes.values())
    limit = max(DOWNLOAD_BATCH_MAX_BYTES, platform.settings.blob_max_bytes)
    if total > limit:
        raise ValidationFailed(
            f"These blobs add up to {total} bytes; a batch download sends at most {limit}. "
            "Ask for fewer at a time.",
            code="batch_too_large",
            fields={"hashes": f"the blobs found add up to more than {limit} bytes"},
            extra={"limit_bytes": limit, "total_bytes": total},
        )
    return BatchDownload(
        found=found,
        missing=[h for h in unique if h not in sizes],
        total_bytes=total,
        frames=_stream_frames(platform, kind, user_id, found),
    )


async def _stream_frames(platform: Platform, kind: _Kind, user_id: str, hashes: Sequence[str]) -> AsyncIterator[bytes]:
    """`<hash><8 hex length><bytes>` per object, opened one at a time when its turn comes; small
    pieces are joined up to DOWNLOAD_STREAM_PIECE_BYTES so thousands of small files are not
    thousands of writes."""
    pending = bytearray()
    for blob_hash in hashes:
        body = await platform.blobs.get(kind.key(user_id, blob_hash))
        if body is None:
            continue
        pending += f"{blob_hash}{body.info.size:08x}".encode("ascii")
        stream = body.stream()
        try:
            async for chunk in stream:
                if len(pending) + len(chunk) <= DOWNLOAD_STREAM_PIECE_BYTES:
                    pending += chunk
                    continue
                if pending:
                    yield bytes(pending)
                    pending.clear()
                if len(chunk) >= DOWNLOAD_STREAM_PIECE_BYTES:
                    yield chunk
                else:
                    pending += chunk
        finally:  # the client went away mid-object: release it now, not when collected
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
    if pending:
        yield bytes(pending)


# --------------------------------------------------------------------------------------------------
# Downloads and reads
# --------------------------------------------------------------------------------------------------


class RequestedRange(NamedTuple):
    """One `Range: bytes=` spec: `first-last`, `first-` (last None) or `-suffix` (first None, last =
    how many final bytes)."""

    first: int | None
    last: int | None


@dataclass(frozen=True, slots=True)
class Download:
    """What to send: the object's size, and its body — None when the client already has it (304).
    `first`/`last` (inclusive) are set for a partial answer (206)."""

    hash: str
    size: int
    body: BlobBody | None
    first: int | None = None
    last: int | None = None

    @property
    def not_modified(self) -> bool:
        return self.body is None

    @property
    def partial(self) -> bool:
        return self.first is not None

    @property
    def length(self) -> int:
        if self.first is not None and self.last is not None:
            return self.last - self.first + 1
        return self.size


def _satisfiable(requested: RequestedRange, size: int) -> tuple[int, int]:
    """The inclusive byte span a range selects (RFC 9110 §14.1.2), or 416."""
    unsatisfiable = RangeNotSatisfiable(
        f"The object has {size} bytes; the requested range selects none of them.",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if size == 0:
        raise unsatisfiable
    if requested.first is None:
        suffix = requested.last or 0
        if suffix == 0:
            raise unsatisfiable
        return max(0, size - suffix), size - 1
    if requested.first >= size:
        raise unsatisfiable
    last = size - 1 if requested.last is None else min(requested.last, size - 1)
    return requested.first, last


async def _open(
    platform: Platform,
    kind: _Kind,
    user_id: str,
    object_hash: str,
    *,
    requested: RequestedRange | None,
    client_has_it: bool,
) -> Download:
    key = kind.key(user_id, object_hash)
    not_found = NotFound(f"{kind.noun.capitalize()} not found.")
    if requested is None and not client_has_it:
        body = await platform.blobs.get(key)
        if body is None:
            raise not_found
        return Download(hash=object_hash, size=body.info.size, body=body)
    info = await platform.blobs.head(key)
    if info is None:
        raise not_found
    if client_has_it:  # If-None-Match is evaluated before Range (RFC 9110 §13.2.2)
        return Download(hash=object_hash, size=info.size, body=None)
    assert requested is not None
    first, last = _satisfiable(requested, info.size)
    body = await platform.blobs.get(key, range=ByteRange(offset=first, length=last - first + 1))
    if body is None:  # deleted between head and get
        raise not_found
    return Download(hash=object_hash, size=info.size, body=body, first=first, last=last)


async def open_blob(
    platform: Platform,
    user_id: str,
    blob_hash: str,
    *,
    requested: RequestedRange | None = None,
    client_has_it: bool = False,
) -> Download:
    """Open a blob for streaming: whole, one range of it (416 if unsatisfiable), or nothing (the client
    already has it: its ETag, the hash, matched). 404 when this user has no such blob."""
    return await _open(platform, BLOBS, user_id, blob_hash, requested=requested, client_has_it=client_has_it)


async def open_manifest(platform: Platform, user_id: str, manifest_hash: str, *, client_has_it: bool = False) -> Download:
    """Open a manifest's JSON for streaming (or nothing, when the client already has it)."""
    return await _open(platform, MANIFESTS, user_id, manifest_hash, requested=None, client_has_it=client_has_it)


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
    for kind, objects, check in ((BLOBS, blobs, _check_blob_frame), (MANIFESTS, manifests, _check_manifest_frame)):
        frames = []
        for object_hash, data in objects.items():
            checked = check(object_hash, data)
            if isinstance(checked, str):
                raise Internal(f"The server built an invalid {kind.noun} ({checked}).")
            frames.append(checked)
        outcome = _BatchOutcome(stored=[], existing=[], rejected=[], handled=set())
        for start in range(0, len(frames), BATCH_GROUP_FRAMES):
            await _store_group(platform, kind, user_id, frames[start : start + BATCH_GROUP_FRAMES], outcome,
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
        raise _too_large(limit, "blob")
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
    now = _now(platform)
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


# --------------------------------------------------------------------------------------------------
# Garbage collection
# --------------------------------------------------------------------------------------------------

# What GC keeps. Parameters: ?1 user, ?2 grace cutoff (ISO time). Roots: every snapshot of the
# user's projects, every workspace's current manifest, and every manifest touched (uploaded, checked,
# relied on) within the grace period. Reachability ignores `state`: it is about references.
_REACHABLE = (
    "WITH RECURSIVE"
    " roots(hash) AS ("
    "  SELECT s.manifest_hash FROM snapshots s JOIN projects p ON p.id = s.project_id WHERE p.user_id = ?1"
    "  UNION SELECT w.current_manifest_hash FROM workspaces w JOIN projects p ON p.id = w.project_id"
    "   WHERE p.user_id = ?1 AND w.current_manifest_hash IS NOT NULL"
    "  UNION SELECT m.hash FROM manifests m WHERE m.user_id = ?1 AND m.touched_at >= ?2"
    " ),"
    " reachable(hash) AS ("
    "  SELECT hash FROM roots"
    "  UNION"
    "  SELECT e.child_hash FROM reachable r JOIN manifest_edges e"
    "   ON e.user_id = ?1 AND e.parent_hash = r.hash AND e.child_type = 'tree'"
    " ),"
    " reachable_blobs(hash) AS ("
    "  SELECT e.child_hash FROM reachable r JOIN manifest_edges e"
    "   ON e.user_id = ?1 AND e.parent_hash = r.hash AND e.child_type = 'blob'"
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
    cutoff = _ago(platform, platform.settings.gc_grace_seconds)
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
        "freedMB": _mb(freed_bytes),
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
        "freedMB": _mb(freed),
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
    now = _now(platform)
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
    expired = _ago(platform, GC_CLAIM_TIMEOUT_SECONDS)
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


def _merge(first: dict[str, int], second: dict[str, int]) -> dict[str, int]:
    return {**second, **first}


async def _delete_condemned(
    platform: Platform, kind: _Kind, user_id: str, condemned: dict[str, int], deadline: datetime
) -> _Victims:
    """Delete condemned objects from R2, then their rows, 1,000 at a time. Stops at the deadline,
    leaving the rest in 'deleting' for a later run (after the claim timeout)."""
    db = platform.db
    freed = _Victims(hashes=[], sizes=0)
    hashes = sorted(condemned)
    for chunk in _chunked(hashes, R2_DELETE_CHUNK):
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
        return {"count": int(row["count"]), "bytes": int(row["bytes"]), "mb": _mb(int(row["bytes"]))}

    total = int(blobs["bytes"]) + int(manifests["bytes"])
    return {"blobs": usage(blobs), "manifests": usage(manifests), "total": {"bytes": total, "mb": _mb(total)}}
