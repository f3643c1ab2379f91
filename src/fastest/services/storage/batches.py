"""Batch uploads: many small blobs, or many manifests, in one request, read as frames
`<64 hex hash><8 hex length><bytes>` and handled in groups (one D1 batch checks a group, its new
objects go to R2, one more D1 batch records them)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Sequence

from fastest.domain.manifest import ManifestError, parse_manifest, sha256_hex
from fastest.errors import ValidationFailed
from fastest.platform import Platform
from fastest.services.billing import entitlements
from fastest.services.common import dumps, now_iso
from fastest.services.storage.index import (
    finish_abandoned_deletion,
    manifest_edge_rows,
    put_object,
    record_blobs,
    record_manifests,
)
from fastest.services.storage.objects import (
    BLOBS,
    MANIFEST_MAX_BYTES,
    MANIFESTS,
    Frame,
    Kind,
    check_declared_length,
    claim_expired,
    too_large,
)

# A batch upload records blobs in D1 and checks them in groups, so memory holds one group at a time.
BATCH_GROUP_FRAMES = 100
BATCH_GROUP_BYTES = 4 * 1024 * 1024
BATCH_PUT_CONCURRENCY = 8
BATCH_HEADER_BYTES = 64 + 8


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
            raise too_large(self.limit)
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
            raise too_large(reader.limit)
        oversize = max_frame_bytes is not None and length > max_frame_bytes
        data = None if oversize else await reader.read(length)
        received = await reader.skip(length) if data is None else len(data)
        if received < length:
            raise _InvalidFraming(index, f"the body ends {length - received} bytes into frame {index}")
        index += 1
        yield frame_hash, data


@dataclass
class BatchOutcome:
    stored: list[str]
    existing: list[str]
    rejected: list[dict[str, str]]
    handled: set[str]

    def to_json(self) -> dict[str, Any]:
        return {"stored": self.stored, "existing": self.existing, "rejected": self.rejected}


# Checks one complete frame: the frame to store, or the code it is rejected with.
_FrameCheck = Callable[[str, bytes], "Frame | str"]


def check_blob_frame(frame_hash: str, data: bytes) -> Frame | str:
    return Frame(frame_hash, data) if sha256_hex(data) == frame_hash else "hash_mismatch"


def check_manifest_frame(frame_hash: str, data: bytes) -> Frame | str:
    """The checks of `PUT /manifests/{hash}`: the hash, then the canonical format."""
    if sha256_hex(data) != frame_hash:
        return "hash_mismatch"
    try:
        manifest = parse_manifest(data)
    except ManifestError as exc:
        return exc.code
    return Frame(frame_hash, data, manifest_edge_rows(manifest))


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
    return await _store_frames(platform, BLOBS, user_id, body, declared_length, check_blob_frame, None)


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
        platform, MANIFESTS, user_id, body, declared_length, check_manifest_frame, MANIFEST_MAX_BYTES
    )


async def _store_frames(
    platform: Platform,
    kind: Kind,
    user_id: str,
    body: AsyncIterator[bytes],
    declared_length: int | None,
    check: _FrameCheck,
    max_frame_bytes: int | None,
) -> dict[str, Any]:
    limit = platform.settings.blob_max_bytes
    max_frames = platform.settings.blob_batch_max_frames
    check_declared_length(declared_length, limit, "batch")
    reader = _BodyReader(body, limit)
    outcome = BatchOutcome(stored=[], existing=[], rejected=[], handled=set())
    group: list[Frame] = []
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
                await store_group(platform, kind, user_id, group, outcome)
                group, group_bytes = [], 0
    except _InvalidFraming as exc:
        await store_group(platform, kind, user_id, group, outcome)
        raise ValidationFailed(
            f"The batch is malformed at frame {exc.index}: {exc.reason}. "
            "Frames before it were handled as listed; nothing after it was read.",
            code="invalid_batch",
            fields={f"frames.{exc.index}": exc.reason},
            extra=outcome.to_json(),
        ) from exc
    await store_group(platform, kind, user_id, group, outcome)
    return outcome.to_json()


async def store_group(
    platform: Platform, kind: Kind, user_id: str, frames: Sequence[Frame], outcome: BatchOutcome,
    *, metered: bool = True,  # False: objects the server made itself (not held to the plan's limit)
) -> None:
    """Check a group of verified frames in one batch, put the new ones in R2, record them in one more."""
    if not frames:
        return
    db = platform.db
    now = now_iso(platform)
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
    new: list[Frame] = []
    for frame in frames:
        if frame.hash in live:
            outcome.existing.append(frame.hash)
        elif frame.hash in being_deleted and not claim_expired(platform, being_deleted[frame.hash]):
            outcome.rejected.append({"hash": frame.hash, "code": kind.busy_code})
        else:
            if frame.hash in being_deleted:
                await finish_abandoned_deletion(platform, kind, user_id, frame.hash)
            new.append(frame)
    if new and metered:  # the plan's storage limit (billing hook)
        await entitlements.require(platform, user_id, "storage_bytes", adding=sum(len(f.data) for f in new))
    for start in range(0, len(new), BATCH_PUT_CONCURRENCY):
        await asyncio.gather(
            *(put_object(platform, kind, user_id, frame) for frame in new[start : start + BATCH_PUT_CONCURRENCY])
        )
    if kind is MANIFESTS:
        recorded = await record_manifests(platform, user_id, new, now)
    else:
        recorded = await record_blobs(platform, user_id, [(f.hash, len(f.data)) for f in new], now)
    for frame in new:
        if frame.hash in recorded:
            outcome.stored.append(frame.hash)
        else:
            outcome.rejected.append({"hash": frame.hash, "code": kind.busy_code})
