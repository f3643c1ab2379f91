"""`POST /v1/blobs/batch` bodies: frames `<64 hex hash><8 hex length><bytes>`, and how blobs are grouped.

Thousands of small files cost one request per few megabytes instead of one each. Files above
`SMALL_BLOB_MAX` go alone through `PUT /v1/blobs/upload/{hash}`, streamed from disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

MIB = 1024 * 1024
SMALL_BLOB_MAX = 1 * MIB
BATCH_MAX_BYTES = 8 * MIB  # whole request body, frame headers included
BATCH_MAX_FRAMES = 1000
FRAME_HEADER_BYTES = 64 + 8
MAX_FRAME_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class PendingBlob:
    """A blob to upload: its hash, its size and where its bytes are (a relative path in the folder)."""

    hash: str
    size: int
    path: str


def frame_header(digest: str, length: int) -> bytes:
    if len(digest) != 64:
        raise ValueError("a frame hash is 64 hex digits")
    if not 0 <= length <= MAX_FRAME_LENGTH:
        raise ValueError("a frame is at most 4 GiB")
    return f"{digest}{length:08x}".encode("ascii")


def encode_frames(blobs: Iterable[tuple[str, bytes]]) -> bytes:
    """One batch body from (hash, bytes) pairs."""
    parts: list[bytes] = []
    for digest, data in blobs:
        parts.append(frame_header(digest, len(data)))
        parts.append(data)
    return b"".join(parts)


def decode_frames(body: bytes) -> Iterator[tuple[str, bytes]]:
    """The inverse of `encode_frames` (tests and debugging); raises ValueError on a truncated body."""
    offset = 0
    while offset < len(body):
        header = body[offset : offset + FRAME_HEADER_BYTES]
        if len(header) < FRAME_HEADER_BYTES:
            raise ValueError("truncated frame header")
        digest, length = header[:64].decode("ascii"), int(header[64:], 16)
        offset += FRAME_HEADER_BYTES
        data = body[offset : offset + length]
        if len(data) != length:
            raise ValueError("truncated frame body")
        offset += length
        yield digest, data


def split_by_size(blobs: Iterable[PendingBlob], small_max: int = SMALL_BLOB_MAX) -> tuple[list[PendingBlob], list[PendingBlob]]:
    """(small ones for batches, big ones for single streamed uploads)."""
    small: list[PendingBlob] = []
    big: list[PendingBlob] = []
    for blob in blobs:
        (small if blob.size <= small_max else big).append(blob)
    return small, big


def plan_batches(
    blobs: Sequence[PendingBlob], *, max_bytes: int = BATCH_MAX_BYTES, max_frames: int = BATCH_MAX_FRAMES
) -> list[list[PendingBlob]]:
    """Group blobs into request bodies of at most `max_bytes` (headers included) and `max_frames` frames.

    Greedy, in the given order. A blob too big for any batch on its own is a caller error (such
    blobs go through the single upload route).
    """
    batches: list[list[PendingBlob]] = []
    current: list[PendingBlob] = []
    current_bytes = 0
    for blob in blobs:
        cost = FRAME_HEADER_BYTES + blob.size
        if cost > max_bytes:
            raise ValueError(f"blob {blob.hash} ({blob.size} bytes) does not fit in a batch")
        if current and (current_bytes + cost > max_bytes or len(current) >= max_frames):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(blob)
        current_bytes += cost
    if current:
        batches.append(current)
    return batches
