"""Existence checks and single uploads: `exists` for blobs and manifests, the upload and download
paths, one blob streamed into R2 (hash and size checked on the way), one manifest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, Sequence

from fastest.domain.manifest import (
    Manifest,
    ManifestError,
    is_sha256_hex,
    parse_manifest,
    sha256_hex,
)
from fastest.errors import ValidationFailed
from fastest.platform import Platform
from fastest.services.billing import entitlements
from fastest.services.common import now_iso
from fastest.services.storage.index import (
    manifest_edge_rows,
    put_object,
    record_blobs,
    record_manifests,
    touch_live,
    touch_many,
)
from fastest.services.storage.objects import (
    BLOBS,
    MANIFEST_MAX_BYTES,
    MANIFESTS,
    Frame,
    HashMismatch,
    Kind,
    check_declared_length,
    mismatch_error,
    too_large,
)


async def _drain(body: AsyncIterator[bytes], limit: int) -> None:
    """Read and drop a body we do not need (the object is already stored), still bounded."""
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > limit:
            raise too_large(limit)


async def _read_all(body: AsyncIterator[bytes], limit: int, what: str) -> bytes:
    parts: list[bytes] = []
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > limit:
            raise too_large(limit, what)
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
            raise too_large(limit, "blob")
        digest.update(chunk)
        yield chunk
    actual = digest.hexdigest()
    if actual != expected:
        raise mismatch_error(expected, actual, size)


# --------------------------------------------------------------------------------------------------
# exists / presign
# --------------------------------------------------------------------------------------------------


async def _exists(platform: Platform, kind: Kind, user_id: str, hashes: Sequence[str]) -> dict[str, Any]:
    unique = list(dict.fromkeys(hashes))
    found = await touch_many(platform, kind, user_id, unique, now_iso(platform))
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
    return bool(await touch_many(platform, MANIFESTS, user_id, [manifest_hash], now_iso(platform)))


def upload_paths(hashes: Sequence[str]) -> dict[str, str]:
    """Worker-proxied upload paths (not presigned URLs: the bearer token is still needed)."""
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
    check_declared_length(declared_length, limit, "blob")
    now = now_iso(platform)
    size = await touch_live(platform, BLOBS, user_id, blob_hash, now)
    if size is None:  # a new blob: the plan's storage limit (billing hook)
        await entitlements.require(platform, user_id, "storage_bytes", adding=declared_length or 0)
    return BlobUpload(hash=blob_hash, key=BLOBS.key(user_id, blob_hash), limit=limit, now=now, stored_size=size)


async def record_upload(platform: Platform, user_id: str, upload: BlobUpload, size: int) -> dict[str, Any]:
    """Record a blob just written to R2 (`{hash, size, created: true}`); 409 if GC is deleting it."""
    if upload.hash not in await record_blobs(platform, user_id, [(upload.hash, size)], upload.now):
        raise BLOBS.being_collected(upload.hash)
    return {"hash": upload.hash, "size": size, "created": True}


def checksum_mismatch(expected: str, size: int | None, actual: str | None = None) -> HashMismatch:
    """The 422 for a body the BlobStore itself refused because its SHA-256 is not `expected` (R2's
    checksum check): the same answer as a mismatch found here, `actual_hash` included when the
    store reported it."""
    if actual is not None and size is not None:
        return mismatch_error(expected, actual, size)
    return HashMismatch(
        f"The SHA-256 of the body received is not {expected}. Nothing was stored.",
        fields={"hash": "does not match the body"},
        extra={"expected_hash": expected, **({"actual_hash": actual} if actual else {}),
               **({"size": size} if size is not None else {})},
    )


async def upload_blob(
    platform: Platform, user_id: str, blob_hash: str, body: AsyncIterator[bytes], *, declared_length: int | None = None
) -> dict[str, Any]:
    """Store one blob from a streamed body: `{hash, size, created}`.

    A stored hash is touched and its body is drained unread (200, `created: false`). Otherwise the
    body streams into R2 through `_verified` (hash and size checked on the way), so a mismatch, an
    oversize body or a broken stream leaves nothing behind; then the row is recorded. (The Worker's
    streaming path, `fastest.edge.blob_stream`, runs the same two steps around an R2 put.)
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
    check_declared_length(declared_length, MANIFEST_MAX_BYTES, "manifest")
    now = now_iso(platform)
    if await touch_live(platform, MANIFESTS, user_id, manifest_hash, now) is not None:
        await _drain(body, MANIFEST_MAX_BYTES)
        return {"hash": manifest_hash, "created": False}
    data = await _read_all(body, MANIFEST_MAX_BYTES, "manifest")
    actual = sha256_hex(data)
    if actual != manifest_hash:
        raise mismatch_error(manifest_hash, actual, len(data))
    manifest = _parse_uploaded_manifest(data)
    await entitlements.require(platform, user_id, "storage_bytes", adding=len(data))  # billing hook
    frame = Frame(manifest_hash, data, manifest_edge_rows(manifest))
    await put_object(platform, MANIFESTS, user_id, frame)
    if manifest_hash not in await record_manifests(platform, user_id, [frame], now):
        raise MANIFESTS.being_collected(manifest_hash)  # the row exists and GC is deleting it
    return {"hash": manifest_hash, "created": True}
