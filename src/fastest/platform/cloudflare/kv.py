"""`KeyValue` over the Workers KV binding (`env.CACHE`).

KV is eventually consistent (a write can take up to a minute to be seen everywhere) and is used for
short-lived caches only. Its rules (TTL ≥ 60 s, key ≤ 512 bytes and not "."/"..", value ≤ 25 MiB)
are checked here with the same errors the local adapter raises.
"""

from __future__ import annotations

from typing import Any

from fastest.platform.cloudflare.interop import field, from_js
from fastest.ports import KV_MAX_KEY_BYTES, KV_MAX_VALUE_BYTES, KV_MIN_TTL_SECONDS, KeyListing


def check_put(key: str, value: str, expiration_ttl: int | None) -> None:
    """The platform's rules, refused with the local adapter's `ValueError`s rather than as opaque JS
    errors at run time."""
    if not isinstance(key, str) or not key:
        raise ValueError("KV key must be a non-empty string")
    if key in (".", ".."):
        raise ValueError("KV key must not be '.' or '..'")
    if len(key.encode("utf-8", "surrogatepass")) > KV_MAX_KEY_BYTES:
        raise ValueError(f"KV key longer than {KV_MAX_KEY_BYTES} bytes")
    if not isinstance(value, str):
        raise TypeError("KV values are strings")
    if len(value.encode("utf-8", "surrogatepass")) > KV_MAX_VALUE_BYTES:
        raise ValueError(f"KV value larger than {KV_MAX_VALUE_BYTES} bytes")
    if expiration_ttl is not None:
        if isinstance(expiration_ttl, bool) or not isinstance(expiration_ttl, int):
            raise ValueError("expiration_ttl must be a whole number of seconds")
        if expiration_ttl < KV_MIN_TTL_SECONDS:
            raise ValueError(f"expiration_ttl must be at least {KV_MIN_TTL_SECONDS} seconds")


def key_listing(result: Any) -> KeyListing:
    """`KeyListing` from KV's `{keys: [{name, expiration?, metadata?}], list_complete, cursor}`."""
    complete = bool(field(result, "list_complete", True))
    return KeyListing(
        keys=[str(field(k, "name")) for k in (from_js(field(result, "keys")) or [])],
        cursor=None if complete else field(result, "cursor"),
        list_complete=complete,
    )


class WorkersKV:
    """`KeyValue` over a KV namespace binding. Values are text."""

    def __init__(self, binding: Any) -> None:
        self._binding = binding

    async def get(self, key: str) -> str | None:
        return from_js(await self._binding.get(key))

    async def put(self, key: str, value: str, *, expiration_ttl: int | None = None) -> None:
        check_put(key, value, expiration_ttl)
        if expiration_ttl is None:
            await self._binding.put(key, value)
        else:
            await self._binding.put(key, value, expirationTtl=int(expiration_ttl))

    async def delete(self, key: str) -> None:
        await self._binding.delete(key)

    async def list(self, *, prefix: str = "", cursor: str | None = None, limit: int = 1000) -> KeyListing:
        options: dict[str, Any] = {"limit": limit}
        if prefix:
            options["prefix"] = prefix
        if cursor:
            options["cursor"] = cursor
        return key_listing(await self._binding.list(**options))
