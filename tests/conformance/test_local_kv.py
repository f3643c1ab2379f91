"""The local KV: TTLs (≥ 60 s) on an injectable clock, KV's size limits, prefix listing with cursors."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from fastest.platform.local.clock import ManualClock
from fastest.platform.local.kv import LocalKeyValue
from fastest.ports import KV_MAX_KEY_BYTES, KV_MAX_VALUE_BYTES


def test_put_get_delete(kv_store: LocalKeyValue) -> None:
    async def scenario() -> None:
        assert await kv_store.get("sync-preview:1") is None
        await kv_store.put("sync-preview:1", "payload")
        assert await kv_store.get("sync-preview:1") == "payload"
        await kv_store.put("sync-preview:1", "replaced")
        assert await kv_store.get("sync-preview:1") == "replaced"
        await kv_store.delete("sync-preview:1")
        assert await kv_store.get("sync-preview:1") is None
        await kv_store.delete("sync-preview:1")  # deleting a missing key is not an error

    asyncio.run(scenario())


def test_ttl_expires_on_the_clock(kv_store: LocalKeyValue, manual_clock: ManualClock) -> None:
    async def scenario() -> None:
        await kv_store.put("jwks:google", "{}", expiration_ttl=60)
        await kv_store.put("forever", "x")
        manual_clock.advance(59)
        assert await kv_store.get("jwks:google") == "{}"
        assert (await kv_store.list()).keys == ["forever", "jwks:google"]
        manual_clock.advance(1)
        assert await kv_store.get("jwks:google") is None
        assert (await kv_store.list()).keys == ["forever"]
        assert await kv_store.get("forever") == "x"

    asyncio.run(scenario())


def test_rewriting_a_key_without_ttl_clears_its_expiry(
    kv_store: LocalKeyValue, manual_clock: ManualClock
) -> None:
    async def scenario() -> None:
        await kv_store.put("k", "short", expiration_ttl=60)
        await kv_store.put("k", "long")
        manual_clock.advance(3600)
        assert await kv_store.get("k") == "long"

    asyncio.run(scenario())


def test_expired_entries_are_purged(
    tmp_path: Path, kv_store: LocalKeyValue, manual_clock: ManualClock
) -> None:
    async def scenario() -> None:
        for index in range(10):
            await kv_store.put(f"tmp:{index}", "v", expiration_ttl=60)
        manual_clock.advance(61)
        await kv_store.put("other", "v")  # writes purge expired rows lazily

    asyncio.run(scenario())
    raw = sqlite3.connect(str(tmp_path / "kv.sqlite"))
    try:
        assert raw.execute("SELECT count(*) FROM kv").fetchone() == (1,)
    finally:
        raw.close()


@pytest.mark.parametrize("ttl", [59, 0, -1, 1.5])
def test_ttl_below_60_seconds_or_fractional_is_refused(kv_store: LocalKeyValue, ttl: float) -> None:
    with pytest.raises(ValueError):
        asyncio.run(kv_store.put("k", "v", expiration_ttl=ttl))  # type: ignore[arg-type]


def test_value_and_key_limits(kv_store: LocalKeyValue) -> None:
    async def scenario() -> None:
        await kv_store.put("k" * KV_MAX_KEY_BYTES, "v")
        with pytest.raises(ValueError):
            await kv_store.put("k" * (KV_MAX_KEY_BYTES + 1), "v")
        with pytest.raises(ValueError):
            await kv_store.put("é" * (KV_MAX_KEY_BYTES // 2 + 1), "v")  # limit is in UTF-8 bytes
        with pytest.raises(ValueError):
            await kv_store.get("")
        with pytest.raises(ValueError):
            await kv_store.put("big", "x" * (KV_MAX_VALUE_BYTES + 1))
        with pytest.raises(ValueError):
            await kv_store.put("big", "é" * (KV_MAX_VALUE_BYTES // 2 + 1))
        assert await kv_store.get("big") is None

    asyncio.run(scenario())


def test_list_by_prefix_pages_with_a_cursor(kv_store: LocalKeyValue) -> None:
    async def scenario() -> None:
        keys = [f"sync-preview:{index:03d}" for index in range(25)]
        for key in reversed(keys):
            await kv_store.put(key, "v")
        await kv_store.put("jwks:google", "v")
        seen: list[str] = []
        cursor = None
        while True:
            page = await kv_store.list(prefix="sync-preview:", cursor=cursor, limit=10)
            seen += page.keys
            if page.list_complete:
                assert page.cursor is None
                break
            assert page.cursor
            cursor = page.cursor
        assert seen == keys
        with pytest.raises(ValueError):
            await kv_store.list(limit=1001)

    asyncio.run(scenario())


def test_values_survive_reopening(tmp_path: Path, manual_clock: ManualClock) -> None:
    first = LocalKeyValue(tmp_path / "kv.sqlite", manual_clock)
    asyncio.run(first.put("k", "kept", expiration_ttl=120))
    first.close()
    second = LocalKeyValue(tmp_path / "kv.sqlite", manual_clock)
    try:
        assert asyncio.run(second.get("k")) == "kept"
        manual_clock.advance(120)
        assert asyncio.run(second.get("k")) is None
    finally:
        second.close()
