"""The local R2: atomic puts (even when the writer dies), metadata, ranges, listing like R2."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastest.platform.local.blobs import READ_CHUNK_BYTES, LocalBlobStore
from fastest.platform.local.clock import ManualClock
from fastest.ports import ByteRange

SRC = Path(__file__).resolve().parents[2] / "src"


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


async def failing_halfway(parts: int) -> AsyncIterator[bytes]:
    for _ in range(parts):
        await asyncio.sleep(0)
        yield b"x" * 1000
    raise ConnectionResetError("client went away")


def files_under(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


# -- put / get / head ---------------------------------------------------------------------------------


def test_put_then_get_head_with_metadata(blob_store: LocalBlobStore, manual_clock: ManualClock) -> None:
    async def scenario() -> None:
        data = b"hello world"
        info = await blob_store.put(
            "usr_1/blobs/abc", data, custom_metadata={"sha256": "abc"}, content_type="text/plain"
        )
        assert info.key == "usr_1/blobs/abc"
        assert info.size == len(data)
        assert info.etag == hashlib.md5(data).hexdigest()  # R2's etag for a single-part upload
        assert info.uploaded == manual_clock.now()
        assert info.custom_metadata == {"sha256": "abc"}
        assert info.content_type == "text/plain"

        assert await blob_store.head("usr_1/blobs/abc") == info
        body = await blob_store.get("usr_1/blobs/abc")
        assert body is not None and body.info == info and body.range is None
        assert await body.read() == data

        assert await blob_store.get("usr_1/blobs/missing") is None
        assert await blob_store.head("usr_1/blobs/missing") is None

    asyncio.run(scenario())


def test_put_streams_from_an_async_iterator_and_get_streams_in_chunks(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        parts = [os.urandom(100_000), os.urandom(50_000), b"", os.urandom(7)]
        whole = b"".join(parts)
        info = await blob_store.put("k/stream", chunks(*parts))
        assert info.size == len(whole)
        assert info.etag == hashlib.md5(whole).hexdigest()
        body = await blob_store.get("k/stream")
        assert body is not None
        received = [chunk async for chunk in body.stream()]
        assert b"".join(received) == whole
        assert all(len(chunk) <= READ_CHUNK_BYTES for chunk in received)
        assert len(received) == 3

    asyncio.run(scenario())


def test_a_body_is_consumed_once(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        await blob_store.put("k/once", b"abc")
        body = await blob_store.get("k/once")
        assert body is not None
        assert await body.read() == b"abc"
        with pytest.raises(ValueError):
            await body.read()

    asyncio.run(scenario())


def test_empty_object(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        info = await blob_store.put("k/empty", b"")
        assert info.size == 0 and info.etag == hashlib.md5(b"").hexdigest()
        body = await blob_store.get("k/empty", range=ByteRange(0))
        assert body is not None and await body.read() == b""

    asyncio.run(scenario())


def test_ranged_get(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        data = bytes(range(256)) * 1000  # 256,000 bytes: ranges cross chunk boundaries
        await blob_store.put("k/ranged", data)

        async def read(requested: ByteRange) -> tuple[bytes, ByteRange | None]:
            body = await blob_store.get("k/ranged", range=requested)
            assert body is not None
            return await body.read(), body.range

        assert await read(ByteRange(10, 5)) == (data[10:15], ByteRange(10, 5))
        assert await read(ByteRange(70_000, 100_000)) == (data[70_000:170_000], ByteRange(70_000, 100_000))
        assert await read(ByteRange(255_990)) == (data[255_990:], ByteRange(255_990, 10))
        assert await read(ByteRange(255_990, 1_000)) == (data[255_990:], ByteRange(255_990, 10))
        assert await read(ByteRange(0, 0)) == (b"", ByteRange(0, 0))
        for invalid in (ByteRange(-1), ByteRange(0, -1), ByteRange(256_001)):
            with pytest.raises(ValueError):
                await blob_store.get("k/ranged", range=invalid)

    asyncio.run(scenario())


def test_overwrite_replaces_the_object_and_frees_the_old_file(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        await blob_store.put("k/x", b"first", custom_metadata={"v": "1"})
        reader = await blob_store.get("k/x")  # holds the first version
        await blob_store.put("k/x", b"second version", custom_metadata={"v": "2"})
        latest = await blob_store.get("k/x")
        assert latest is not None and await latest.read() == b"second version"
        assert latest.info.custom_metadata == {"v": "2"}
        # A body taken before the overwrite still reads the version it was taken from.
        assert reader is not None and await reader.read() == b"first"
        assert len(files_under(blob_store.root / "objects")) == 1

    asyncio.run(scenario())


def test_delete_one_or_many(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        for key in ("d/a", "d/b", "d/c"):
            await blob_store.put(key, key.encode())
        await blob_store.delete("d/a")
        assert await blob_store.head("d/a") is None
        await blob_store.delete(["d/b", "d/c", "d/never-existed"])
        assert (await blob_store.list(prefix="d/")).objects == []
        assert files_under(blob_store.root / "objects") == []
        with pytest.raises(ValueError):
            await blob_store.delete([f"d/{i}" for i in range(1001)])

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "key",
    ["", "/abs/key", "a//b", "a/", "a/../b", "..", "./a", "a\x00b", "a\\b", "k" * 1025],
)
def test_unsafe_keys_are_refused(blob_store: LocalBlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        asyncio.run(blob_store.put(key, b"x"))
    with pytest.raises(ValueError):
        asyncio.run(blob_store.head(key))


def test_custom_metadata_is_limited_to_8_kib(blob_store: LocalBlobStore) -> None:
    with pytest.raises(ValueError):
        asyncio.run(blob_store.put("k/meta", b"x", custom_metadata={"big": "v" * 8200}))
    with pytest.raises(ValueError):
        asyncio.run(blob_store.put("k/meta", b"x", custom_metadata={"n": 1}))  # type: ignore[dict-item]


# -- crashes ---------------------------------------------------------------------------------------


def test_a_source_failing_halfway_leaves_nothing_visible(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        with pytest.raises(ConnectionResetError):
            await blob_store.put("k/partial", failing_halfway(parts=5))
        assert await blob_store.get("k/partial") is None
        assert await blob_store.head("k/partial") is None
        assert (await blob_store.list()).objects == []
        assert files_under(blob_store.root / ".tmp") == []
        assert files_under(blob_store.root / "objects") == []

    asyncio.run(scenario())


def test_a_failed_overwrite_keeps_the_previous_object(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        original = await blob_store.put("k/keep", b"original")
        with pytest.raises(ConnectionResetError):
            await blob_store.put("k/keep", failing_halfway(parts=3))
        assert await blob_store.head("k/keep") == original
        body = await blob_store.get("k/keep")
        assert body is not None and await body.read() == b"original"

    asyncio.run(scenario())


def test_a_cancelled_put_leaves_nothing_visible(blob_store: LocalBlobStore) -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0)
            yield b"y" * 4096

    async def scenario() -> None:
        task = asyncio.create_task(blob_store.put("k/cancelled", endless()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await blob_store.head("k/cancelled") is None
        assert files_under(blob_store.root / ".tmp") == []

    asyncio.run(scenario())


CRASHING_WRITER = textwrap.dedent(
    """
    import asyncio, os, sys
    from datetime import datetime, timezone
    from pathlib import Path

    sys.path.insert(0, sys.argv[2])
    from fastest.platform.local.blobs import LocalBlobStore
    from fastest.platform.local.clock import ManualClock

    async def main():
        store = LocalBlobStore(Path(sys.argv[1]), ManualClock(datetime.now(timezone.utc)))

        async def body():
            for index in range(100):
                yield b"z" * 65536
                if index == 10:
                    os._exit(17)  # the process dies mid-write: no cleanup, no finally, no atexit

        await store.put("usr_1/blobs/crash", body())
        await store.put("usr_1/blobs/existing", body())

    asyncio.run(main())
    """
)


def test_a_writer_killed_mid_put_leaves_nothing_visible(tmp_path: Path, manual_clock: ManualClock) -> None:
    root = tmp_path / "r2"
    before = LocalBlobStore(root, manual_clock)
    asyncio.run(before.put("usr_1/blobs/existing", b"old content"))
    before.close()

    done = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(root), str(SRC)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 17, done.stderr.decode()
    leftovers = files_under(root / ".tmp")
    assert leftovers and leftovers[0].stat().st_size > 0  # the crash really happened mid-write

    store = LocalBlobStore(root, manual_clock)
    try:

        async def scenario() -> None:
            assert await store.get("usr_1/blobs/crash") is None
            assert await store.head("usr_1/blobs/crash") is None
            listing = await store.list(prefix="usr_1/")
            assert [info.key for info in listing.objects] == ["usr_1/blobs/existing"]
            body = await store.get("usr_1/blobs/existing")
            assert body is not None and await body.read() == b"old content"

        asyncio.run(scenario())
        # Reopening removed the dead writer's temp file.
        assert files_under(root / ".tmp") == []
    finally:
        store.close()


# -- list ----------------------------------------------------------------------------------------------


def put_all(store: LocalBlobStore, keys: list[str]) -> None:
    async def scenario() -> None:
        for key in keys:
            await store.put(key, key.encode())

    asyncio.run(scenario())


def test_list_is_sorted_by_utf8_bytes_and_filtered_by_prefix(blob_store: LocalBlobStore) -> None:
    put_all(blob_store, ["p/é", "p/z", "p/B", "p/a", "q/a", "pp/a"])
    listing = asyncio.run(blob_store.list(prefix="p/"))
    assert [info.key for info in listing.objects] == ["p/B", "p/a", "p/z", "p/é"]
    assert listing.truncated is False and listing.cursor is None
    assert listing.objects[0].size == len(b"p/B")
    everything = asyncio.run(blob_store.list())
    assert len(everything.objects) == 6


def test_list_pages_with_a_cursor_without_duplicates_or_gaps(blob_store: LocalBlobStore) -> None:
    keys = sorted(f"u/blobs/{index:04d}" for index in range(57))
    put_all(blob_store, keys)

    async def scenario() -> None:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await blob_store.list(prefix="u/", cursor=cursor, limit=10)
            pages += 1
            seen += [info.key for info in page.objects]
            if not page.truncated:
                assert page.cursor is None
                break
            assert page.cursor and len(page.objects) == 10
            cursor = page.cursor
        assert seen == keys
        assert pages == 6

    asyncio.run(scenario())


def test_list_with_a_delimiter_rolls_up_prefixes(blob_store: LocalBlobStore) -> None:
    put_all(
        blob_store,
        ["u1/blobs/a", "u1/blobs/b", "u1/manifests/m", "u1/readme", "u1/deploys/d1/log", "u2/blobs/x"],
    )
    listing = asyncio.run(blob_store.list(prefix="u1/", delimiter="/"))
    assert [info.key for info in listing.objects] == ["u1/readme"]
    assert listing.delimited_prefixes == ["u1/blobs/", "u1/deploys/", "u1/manifests/"]
    assert listing.truncated is False

    top = asyncio.run(blob_store.list(delimiter="/"))
    assert top.objects == [] and top.delimited_prefixes == ["u1/", "u2/"]


def test_delimited_listing_pages_without_duplicates(blob_store: LocalBlobStore) -> None:
    keys = [f"r/{group}/{item}" for group in "abcdefg" for item in range(3)]
    keys += [f"r/file{i}" for i in range(5)]
    put_all(blob_store, keys)

    async def scenario() -> None:
        objects: list[str] = []
        prefixes: list[str] = []
        cursor = None
        while True:
            page = await blob_store.list(prefix="r/", delimiter="/", cursor=cursor, limit=3)
            assert len(page.objects) + len(page.delimited_prefixes) <= 3
            objects += [info.key for info in page.objects]
            prefixes += page.delimited_prefixes
            if not page.truncated:
                break
            cursor = page.cursor
        assert prefixes == [f"r/{group}/" for group in "abcdefg"]
        assert objects == [f"r/file{i}" for i in range(5)]

    asyncio.run(scenario())


def test_list_validates_limit_and_cursor(blob_store: LocalBlobStore) -> None:
    for limit in (0, 1001):
        with pytest.raises(ValueError):
            asyncio.run(blob_store.list(limit=limit))
    with pytest.raises(ValueError):
        asyncio.run(blob_store.list(cursor="not a cursor!"))


def test_objects_survive_reopening(tmp_path: Path, manual_clock: ManualClock) -> None:
    first = LocalBlobStore(tmp_path / "r2", manual_clock)
    info = asyncio.run(first.put("k/persist", b"data", custom_metadata={"a": "b"}, content_type="x/y"))
    first.close()
    second = LocalBlobStore(tmp_path / "r2", manual_clock)
    try:
        assert asyncio.run(second.head("k/persist")) == info
    finally:
        second.close()
