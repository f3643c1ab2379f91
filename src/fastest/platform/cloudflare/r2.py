"""`BlobStore` over the R2 binding (`env.BLOBS`).

R2 objects (`R2Object`, `R2ObjectBody`) are class instances, so they reach Python as proxies; the
conversions read them through `interop.field`, which accepts the documented shape as a dict too.
A put is atomic on R2 itself. Bodies stream out chunk by chunk; a streamed put is buffered first,
because R2 needs the length of a streamed body up front and a blob is at most `blob_max_bytes`
(32 MiB by default), well inside the isolate's 128 MB.

The Worker's streaming blob path (`blob_stream`) bypasses the buffering both ways: `put_stream` hands
the request's own JS ReadableStream (known length: it is a request body with `Content-Length`) to R2
with R2's `sha256` option, so R2 verifies the hash and refuses the put on a mismatch; `R2Body.native_stream`
gives the object's JS body stream to return in a Response untouched.
"""

from __future__ import annotations

import re

from typing import Any, AsyncIterator, Mapping, Sequence

from fastest.platform.cloudflare.interop import (
    error_message,
    field,
    from_js,
    is_null,
    to_bytes,
    to_datetime,
    to_str_dict,
)
from fastest.ports import BlobInfo, BlobListing, ByteRange, ChecksumMismatch

# R2 lists without metadata unless asked; the port's BlobInfo carries both.
LIST_INCLUDE = ["httpMetadata", "customMetadata"]
# How R2 refuses a put whose body does not match the checksum it was given (workerd/miniflare:
# "put: The SHA-256 checksum you specified did not match what we received. … (10037)").
_CHECKSUM_MISMATCH_MARKERS = ("checksum you specified did not match", "(10037)")


# R2's refusal names the hash of what it received: "… Actual SHA-256 was: <hex>".
_ACTUAL_SHA256 = re.compile(r"Actual SHA-256 was: ([0-9a-f]{64})")


def actual_sha256(message: str) -> str | None:
    """The SHA-256 R2 says it computed, when its refusal says it."""
    found = _ACTUAL_SHA256.search(message)
    return found.group(1) if found else None


def is_checksum_mismatch(exc: BaseException) -> bool:
    message = error_message(exc)
    return any(marker in message for marker in _CHECKSUM_MISMATCH_MARKERS)


def blob_info(obj: Any) -> BlobInfo:
    """`BlobInfo` from an R2Object: key, size, etag, uploaded, customMetadata, httpMetadata."""
    http_metadata = from_js(field(obj, "httpMetadata")) or {}
    return BlobInfo(
        key=str(field(obj, "key")),
        size=int(field(obj, "size", 0)),
        etag=str(field(obj, "etag", "")),
        uploaded=to_datetime(field(obj, "uploaded")),
        custom_metadata=to_str_dict(field(obj, "customMetadata")),
        content_type=http_metadata.get("contentType"),
    )


def blob_listing(result: Any) -> BlobListing:
    """`BlobListing` from R2's `{objects, truncated, cursor, delimitedPrefixes}`."""
    truncated = bool(field(result, "truncated", False))
    return BlobListing(
        objects=[blob_info(o) for o in (field(result, "objects") or [])],
        delimited_prefixes=[str(p) for p in (from_js(field(result, "delimitedPrefixes")) or [])],
        truncated=truncated,
        cursor=field(result, "cursor") if truncated else None,
    )


def range_option(byte_range: ByteRange) -> dict[str, int]:
    """R2's `range` option: `{offset, length}`, length omitted for "to the end"."""
    option = {"offset": byte_range.offset}
    if byte_range.length is not None:
        option["length"] = byte_range.length
    return option


async def read_stream(stream: Any) -> AsyncIterator[bytes]:
    """The chunks of a JS ReadableStream, through its reader (one chunk in memory at a time)."""
    reader = stream.getReader()
    try:
        while True:
            chunk = await reader.read()
            if field(chunk, "done", False):
                return
            data = to_bytes(field(chunk, "value"))
            if data:
                yield data
    finally:
        release = getattr(reader, "releaseLock", None)
        if callable(release):
            release()


class R2Body:
    """`BlobBody` over an R2ObjectBody: `stream()` yields chunks, `read()` buffers them."""

    def __init__(self, obj: Any, requested: ByteRange | None) -> None:
        self._obj = obj
        self.info = blob_info(obj)
        self.range = requested

    def stream(self) -> AsyncIterator[bytes]:
        return read_stream(field(self._obj, "body"))

    def native_stream(self) -> Any:
        """The object's JS ReadableStream itself, for a Worker Response to send as it is."""
        return field(self._obj, "body")

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.stream()])


async def _collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([bytes(chunk) async for chunk in chunks])


class R2BlobStore:
    """`BlobStore` over an R2 bucket binding."""

    def __init__(self, binding: Any) -> None:
        self._binding = binding

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterator[bytes],
        *,
        custom_metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> BlobInfo:
        body = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else await _collect(data)
        options: dict[str, Any] = {}
        if custom_metadata:
            options["customMetadata"] = dict(custom_metadata)
        if content_type:
            options["httpMetadata"] = {"contentType": content_type}
        return blob_info(await self._binding.put(key, body, **options))

    async def put_stream(
        self,
        key: str,
        stream: Any,
        *,
        sha256: str,
        custom_metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> BlobInfo:
        """Put a JS ReadableStream of known length (a request body) as it is, with R2's `sha256`
        option: R2 hashes what it receives and fails the put on a mismatch (`ChecksumMismatch`,
        nothing stored)."""
        options: dict[str, Any] = {"sha256": sha256}
        if custom_metadata:
            options["customMetadata"] = dict(custom_metadata)
        if content_type:
            options["httpMetadata"] = {"contentType": content_type}
        try:
            obj = await self._binding.put(key, stream, **options)
        except Exception as exc:
            if is_checksum_mismatch(exc):
                raise ChecksumMismatch(error_message(exc), actual=actual_sha256(error_message(exc))) from exc
            raise
        return blob_info(obj)

    async def get(self, key: str, *, range: ByteRange | None = None) -> R2Body | None:
        if range is None:
            obj = await self._binding.get(key)
        else:
            obj = await self._binding.get(key, range=range_option(range))
        return None if is_null(obj) else R2Body(obj, range)

    async def head(self, key: str) -> BlobInfo | None:
        obj = await self._binding.head(key)
        return None if is_null(obj) else blob_info(obj)

    async def delete(self, keys: str | Sequence[str]) -> None:
        """One key or up to 1000 at once (R2's limit)."""
        await self._binding.delete(keys if isinstance(keys, str) else list(keys))

    async def list(
        self,
        *,
        prefix: str = "",
        cursor: str | None = None,
        delimiter: str | None = None,
        limit: int = 1000,
    ) -> BlobListing:
        options: dict[str, Any] = {"limit": limit, "include": LIST_INCLUDE}
        if prefix:
            options["prefix"] = prefix
        if cursor:
            options["cursor"] = cursor
        if delimiter:
            options["delimiter"] = delimiter
        return blob_listing(await self._binding.list(**options))
