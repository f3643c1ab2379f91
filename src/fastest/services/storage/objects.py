"""The two kinds of stored object (blobs and manifests): their R2 keys, their errors, the limits
every part of storage shares, the frame an object travels in, and small helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, NamedTuple, Sequence

from fastest.domain.ids import iso, parse_iso
from fastest.errors import ApiError, Conflict, PayloadTooLarge, ValidationFailed
from fastest.platform import Platform
from fastest.ports import D1_MAX_VALUE_BYTES

# A manifest is one directory. Its body is bounded by D1's value limit: it is read whole (to verify
# and parse), and its edge list is bound as JSON values in one batch.
MANIFEST_MAX_BYTES = D1_MAX_VALUE_BYTES
# A GC run deletes what it condemned itself. Rows another run left in 'deleting' are finished (by
# GC or by an upload of that hash) only after this long, by when that run has certainly stopped:
# a run stops deleting after GC_TIME_BUDGET_SECONDS, well inside the timeout.
GC_CLAIM_TIMEOUT_SECONDS = 15 * 60
# How long a client should wait before retrying an upload of a hash that GC is deleting.
RETRY_AFTER_SECONDS = 5
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


def too_large(limit: int, what: str = "request body") -> PayloadTooLarge:
    return PayloadTooLarge(f"The {what} exceeds the limit of {limit} bytes.", extra={"limit_bytes": limit})


def mismatch_error(expected: str, actual: str, size: int) -> HashMismatch:
    return HashMismatch(
        f"The SHA-256 of the {size} bytes received is {actual}, not {expected}. Nothing was stored.",
        fields={"hash": "does not match the body"},
        extra={"expected_hash": expected, "actual_hash": actual, "size": size},
    )


# --------------------------------------------------------------------------------------------------
# The two kinds of object
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind:
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


BLOBS = Kind("blob_refs", "blobs", "blob", "blob_being_collected", "application/octet-stream")
MANIFESTS = Kind("manifests", "manifests", "manifest", "manifest_being_collected", "application/json")
# Rejection codes of a batch frame that mean "send it again in RETRY_AFTER_SECONDS".
BEING_COLLECTED_CODES = frozenset({BLOBS.busy_code, MANIFESTS.busy_code})


def blob_key(user_id: str, blob_hash: str) -> str:
    return BLOBS.key(user_id, blob_hash)


def manifest_key(user_id: str, manifest_hash: str) -> str:
    return MANIFESTS.key(user_id, manifest_hash)


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def ago(platform: Platform, seconds: int) -> str:
    return iso(platform.clock.now() - timedelta(seconds=seconds))


def in_mib(size: int) -> float:
    return round(size / MIB, 2)


def in_chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def claim_expired(platform: Platform, deleting_since: str | None) -> bool:
    """Whether a 'deleting' row was left by a GC run that has certainly stopped."""
    if deleting_since is None:
        return True
    return parse_iso(deleting_since) <= platform.clock.now() - timedelta(seconds=GC_CLAIM_TIMEOUT_SECONDS)


def check_declared_length(declared_length: int | None, limit: int, what: str) -> None:
    if declared_length is not None and declared_length > limit:
        raise too_large(limit, what)


class Frame(NamedTuple):
    hash: str
    data: bytes
    edges: list[list[Any]] | None = None  # a manifest's edge rows (`manifest_edge_rows`)
