"""Batch frames `<64 hex hash><8 hex length><bytes>`: the bodies of `POST /v1/blobs/batch` and
`POST /v1/blobs/manifests/batch`, the answer of `POST /v1/blobs/download/batch`, and how objects are
grouped into requests.

Thousands of small files cost one request per few megabytes instead of one each. Files above
`SMALL_BLOB_MAX` go alone through `PUT /v1/blobs/upload/{hash}`, streamed from disk.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Callable, Iterable, Iterator, Sequence, TypeVar

    T = TypeVar("T")

MIB = 1024 * 1024
SMALL_BLOB_MAX = 1 * MIB
BATCH_MAX_BYTES = 8 * MIB  # whole request body, frame headers included
BATCH_MAX_FRAMES = 1000
FRAME_HEADER_BYTES = 64 + 8
MAX_FRAME_LENGTH = 0xFFFFFFFF
_HEX_LOWER = frozenset(b"0123456789abcdef")
_HEX_ANY = frozenset(b"0123456789abcdefABCDEF")


class PendingBlob(namedtuple("PendingBlob", ("hash", "size", "path"))):
    """A blob to upload: its hash, its size and where its bytes are (a relative path in the folder)."""

    __slots__ = ()
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


def group_by_size(items: Iterable[T], cost: Callable[[T], int], *, max_bytes: int, max_items: int) -> list[list[T]]:
    """Greedy groups, in the given order, of at most `max_items` items costing at most `max_bytes`
    together; an item that alone costs more than `max_bytes` makes a group of its own."""
    groups: list[list[T]] = []
    current: list[T] = []
    current_bytes = 0
    for item in items:
        item_cost = cost(item)
        if current and (current_bytes + item_cost > max_bytes or len(current) >= max_items):
            groups.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += item_cost
    if current:
        groups.append(current)
    return groups


def plan_batches(
    blobs: Sequence[PendingBlob], *, max_bytes: int = BATCH_MAX_BYTES, max_frames: int = BATCH_MAX_FRAMES
) -> list[list[PendingBlob]]:
    """Group blobs into request bodies of at most `max_bytes` (headers included) and `max_frames` frames.

    Greedy, in the given order. A blob too big for any batch on its own is a caller error (such
    blobs go through the single upload route).
    """
    for blob in blobs:
        if FRAME_HEADER_BYTES + blob.size > max_bytes:
            raise ValueError(f"blob {blob.hash} ({blob.size} bytes) does not fit in a batch")
    return group_by_size(blobs, lambda b: FRAME_HEADER_BYTES + b.size, max_bytes=max_bytes, max_items=max_frames)


def plan_manifest_batches(
    manifests: Sequence[tuple[str, bytes]], *, max_bytes: int = BATCH_MAX_BYTES, max_frames: int = BATCH_MAX_FRAMES
) -> list[list[tuple[str, bytes]]]:
    """(hash, bytes) pairs grouped like `plan_batches`, order kept (children before parents stays so)."""
    return group_by_size(manifests, lambda m: FRAME_HEADER_BYTES + len(m[1]), max_bytes=max_bytes, max_items=max_frames)


class FramingError(ValueError):
    """A frame stream that is not well formed. `truncated`: it merely stopped early (a cut connection)."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


class FrameReader:
    """Frames read as they arrive from an iterator of byte chunks (a streamed HTTP answer), holding
    at most one chunk plus a header in memory: `header()`, then all of `body(length)`, and again."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buffer += chunk
                return True
        return False

    def header(self) -> tuple[str, int] | None:
        """The next frame's (hash, length), or None where the stream ends cleanly between frames."""
        while len(self._buffer) < FRAME_HEADER_BYTES and self._fill():
            pass
        if not self._buffer:
            return None
        if len(self._buffer) < FRAME_HEADER_BYTES:
            raise FramingError("the stream ends inside a frame header", truncated=True)
        hash_part, length_part = bytes(self._buffer[:64]), bytes(self._buffer[64:FRAME_HEADER_BYTES])
        del self._buffer[:FRAME_HEADER_BYTES]
        if not set(hash_part) <= _HEX_LOWER or not set(length_part) <= _HEX_ANY:
            raise FramingError("a frame header is not <64 hex hash><8 hex length>")
        return hash_part.decode("ascii"), int(length_part, 16)

    def body(self, length: int) -> Iterator[bytes]:
        """The current frame's `length` bytes, in pieces; raises FramingError if the stream stops first."""
        remaining = length
        while remaining:
            if not self._buffer and not self._fill():
                raise FramingError(f"the stream ends {remaining} bytes before the end of a frame", truncated=True)
            piece = bytes(self._buffer[:remaining])
            del self._buffer[: len(piece)]
            remaining -= len(piece)
            yield piece
