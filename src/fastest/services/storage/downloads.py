"""Downloads: one blob or manifest (whole, a byte range, or nothing when the client has it), and a
batch download that looks every hash up first, then streams the objects one by one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, NamedTuple, Sequence

from fastest.errors import NotFound, ValidationFailed
from fastest.platform import Platform
from fastest.ports import BlobBody, ByteRange
from fastest.services.common import dumps
from fastest.services.storage.objects import (
    BLOBS,
    MANIFESTS,
    Kind,
    RangeNotSatisfiable,
    in_chunks,
)

# A batch download answers at most this many bytes of blobs (or one blob of the blob size limit, if
# that is more); the sizes are known from blob_refs before anything is sent. The existence lookup
# takes the hashes 100 at a time (one statement each, all in one D1 batch).
DOWNLOAD_BATCH_MAX_BYTES = 64 * 1024 * 1024
DOWNLOAD_LOOKUP_CHUNK = 100
# The streamed answer goes out in pieces of about this size (frame headers joined to their bodies).
DOWNLOAD_STREAM_PIECE_BYTES = 64 * 1024


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
    platform: Platform, user_id: str, hashes: Sequence[str], *, kind: Kind = BLOBS
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
            for chunk in in_chunks(unique, DOWNLOAD_LOOKUP_CHUNK)
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


async def _stream_frames(platform: Platform, kind: Kind, user_id: str, hashes: Sequence[str]) -> AsyncIterator[bytes]:
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
    kind: Kind,
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
