"""The local R2: atomic puts (even when the writer dies), metadata, ranges, listing like R2.

Bodies up to the inline limit live in the index, larger ones as files; every behaviour is checked for
both kinds, and the layout assertions (`files_under(...)`) tell which kind an object became.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastest.platform.local.blobs import DEFAULT_INLINE_LIMIT, READ_CHUNK_BYTES, LocalBlobStore
from fastest.platform.local.clock import ManualClock
from fastest.ports import ByteRange, ChecksumMismatch

SRC = Path(__file__).resolve().parents[2] / "src"
SMALL = 2_000  # stored inline
LARGE = DEFAULT_INLINE_LIMIT + 1  # stored as a file


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


def test_put_stream_is_checked_against_its_sha256_as_r2_checks_it(blob_store: LocalBlobStore) -> None:
    """The port's verified put, as R2's `sha256` option does it: a matching body is stored; a body
    whose hash differs stores nothing (the key keeps what it had) and raises ChecksumMismatch."""

    async def scenario() -> None:
        big = os.urandom(300_000)  # past the inline limit: spilled to a file on the way
        digest = hashlib.sha256(big).hexdigest()
        info = await blob_store.put_stream("k/verified", chunks(big[:1000], big[1000:]), sha256=digest)
        assert info.size == len(big)
        body = await blob_store.get("k/verified")
        assert body is not None and b"".join([c async for c in body.native_stream()]) == big
        with pytest.raises(ChecksumMismatch):
            await blob_store.put_stream("k/verified", chunks(b"tampered", big), sha256=digest)
        kept = await blob_store.get("k/verified")
        assert kept is not None and await kept.read() == big
        with pytest.raises(ChecksumMismatch):
            await blob_store.put_stream("k/never", chunks(b"x"), sha256=digest)
        assert await blob_store.head("k/never") is None

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


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_overwrite_replaces_the_object_and_frees_the_old_file(blob_store: LocalBlobStore, size: int) -> None:
    first, second = b"1" * size, b"2" * (size + 10)

    async def scenario() -> None:
        await blob_store.put("k/x", first, custom_metadata={"v": "1"})
        reader = await blob_store.get("k/x")  # holds the first version
        await blob_store.put("k/x", second, custom_metadata={"v": "2"})
        latest = await blob_store.get("k/x")
        assert latest is not None and await latest.read() == second
        assert latest.info.custom_metadata == {"v": "2"}
        # A body taken before the overwrite still reads the version it was taken from.
        assert reader is not None and await reader.read() == first
        assert len(files_under(blob_store.root / "objects")) == (1 if size > DEFAULT_INLINE_LIMIT else 0)

    asyncio.run(scenario())


def test_delete_one_or_many(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        for key, size in (("d/a", SMALL), ("d/b", LARGE), ("d/c", SMALL)):
            await blob_store.put(key, key.encode() * size)
        assert len(files_under(blob_store.root / "objects")) == 1
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


# -- inline and file bodies ----------------------------------------------------------------------------


def object_files(store: LocalBlobStore) -> list[Path]:
    return files_under(store.root / "objects")


async def uneven_chunks(data: bytes) -> AsyncIterator[bytes]:
    """`data` in chunks of 1, 7, 4096, 1, 7, 4096… bytes, so no boundary lines up with the limit."""
    sizes = (1, 7, 4096)
    offset = 0
    turn = 0
    while offset < len(data):
        await asyncio.sleep(0)
        size = sizes[turn % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        turn += 1


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "iterator"])
@pytest.mark.parametrize(
    ("size", "inline"),
    [
        (0, True),
        (1, True),
        (DEFAULT_INLINE_LIMIT - 1, True),
        (DEFAULT_INLINE_LIMIT, True),  # exactly the limit: still inline
        (DEFAULT_INLINE_LIMIT + 1, False),
        (3 * DEFAULT_INLINE_LIMIT, False),
    ],
)
def test_bodies_up_to_the_limit_are_inline_and_larger_ones_files(
    blob_store: LocalBlobStore, size: int, inline: bool, streamed: bool
) -> None:
    data = os.urandom(size)

    async def scenario() -> None:
        info = await blob_store.put("k/b", uneven_chunks(data) if streamed else data)
        assert info.size == size and info.etag == hashlib.md5(data).hexdigest()
        assert len(object_files(blob_store)) == (0 if inline else 1)
        if not inline:  # a spilled file holds the whole body, including what was read before the spill
            assert object_files(blob_store)[0].read_bytes() == data
        assert files_under(blob_store.root / ".tmp") == []
        assert await blob_store.head("k/b") == info
        body = await blob_store.get("k/b")
        assert body is not None and body.info == info and await body.read() == data

    asyncio.run(scenario())


def test_the_inline_limit_is_configurable(tmp_path: Path, manual_clock: ManualClock) -> None:
    store = LocalBlobStore(tmp_path / "r2", manual_clock, inline_limit=100)
    try:

        async def scenario() -> None:
            await store.put("k/at-limit", b"a" * 100)
            assert object_files(store) == []
            await store.put("k/over-limit", chunks(b"b" * 60, b"b" * 41))
            assert len(object_files(store)) == 1
            for key, data in (("k/at-limit", b"a" * 100), ("k/over-limit", b"b" * 101)):
                body = await store.get(key)
                assert body is not None and await body.read() == data

        asyncio.run(scenario())
    finally:
        store.close()
    with pytest.raises(ValueError):
        LocalBlobStore(tmp_path / "r2", manual_clock, inline_limit=-1)


def test_inline_objects_are_read_without_any_file(blob_store: LocalBlobStore) -> None:
    data = os.urandom(SMALL)

    async def scenario() -> None:
        await blob_store.put("k/inline", data, custom_metadata={"m": "1"}, content_type="text/plain")
        shutil.rmtree(blob_store.root / "objects")  # an inline read must not even look there
        body = await blob_store.get("k/inline", range=ByteRange(10, 20))
        assert body is not None and await body.read() == data[10:30]
        body = await blob_store.get("k/inline")
        assert body is not None and await body.read() == data
        assert body.info.custom_metadata == {"m": "1"} and body.info.content_type == "text/plain"

    asyncio.run(scenario())


def test_ranged_get_on_an_inline_object(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        data = bytes(range(256)) * 200  # 51,200 bytes: inline
        await blob_store.put("k/ranged", data)
        assert object_files(blob_store) == []

        async def read(requested: ByteRange) -> tuple[bytes, ByteRange | None]:
            body = await blob_store.get("k/ranged", range=requested)
            assert body is not None
            return await body.read(), body.range

        assert await read(ByteRange(10, 5)) == (data[10:15], ByteRange(10, 5))
        assert await read(ByteRange(50_000)) == (data[50_000:], ByteRange(50_000, 1_200))
        assert await read(ByteRange(51_190, 1_000)) == (data[51_190:], ByteRange(51_190, 10))
        assert await read(ByteRange(51_200)) == (b"", ByteRange(51_200, 0))
        assert await read(ByteRange(0, 0)) == (b"", ByteRange(0, 0))
        for invalid in (ByteRange(-1), ByteRange(0, -1), ByteRange(51_201)):
            with pytest.raises(ValueError):
                await blob_store.get("k/ranged", range=invalid)

    asyncio.run(scenario())


def test_an_inline_body_streams_in_chunks_and_is_consumed_once(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        data = os.urandom(DEFAULT_INLINE_LIMIT)
        await blob_store.put("k/s", data)
        body = await blob_store.get("k/s")
        assert body is not None
        received = [chunk async for chunk in body.stream()]
        assert b"".join(received) == data and all(len(c) <= READ_CHUNK_BYTES for c in received)
        with pytest.raises(ValueError):
            await body.read()

    asyncio.run(scenario())


def test_replacing_an_object_switches_kinds_without_orphan_files(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        versions = [os.urandom(size) for size in (SMALL, LARGE, LARGE + 5, SMALL + 5, 0, LARGE)]
        readers = []
        for version, data in enumerate(versions):
            await blob_store.put("k/switch", data, custom_metadata={"v": str(version)})
            readers.append(await blob_store.get("k/switch"))
            assert len(object_files(blob_store)) == (1 if len(data) > DEFAULT_INLINE_LIMIT else 0)
            head = await blob_store.head("k/switch")
            assert head is not None and head.size == len(data) and head.custom_metadata == {"v": str(version)}
        # Each body reads the version current when it was taken, file or inline, even if replaced since.
        for reader, data in zip(readers, versions):
            assert reader is not None and await reader.read() == data
        await blob_store.delete("k/switch")
        assert object_files(blob_store) == [] and files_under(blob_store.root / ".tmp") == []

    asyncio.run(scenario())


def test_puts_started_together_commit_together_and_each_is_what_it_should_be(blob_store: LocalBlobStore) -> None:
    """Concurrent puts share one commit (the local store's group commit): every object is visible
    once its put returns, and two versions of one key put together end as one of them, whole, the
    other one's file gone."""

    async def scenario() -> None:
        small = {f"k/small-{n}": os.urandom(SMALL + n) for n in range(50)}
        await asyncio.gather(*(blob_store.put(key, data) for key, data in small.items()))
        for key, data in small.items():
            body = await blob_store.get(key)
            assert body is not None and await body.read() == data
        first, second = os.urandom(LARGE), os.urandom(LARGE + 1)
        await asyncio.gather(blob_store.put("k/twice", first), blob_store.put("k/twice", second))
        body = await blob_store.get("k/twice")
        assert body is not None and await body.read() in (first, second)  # whichever committed last, whole
        assert len(object_files(blob_store)) == 1  # the other version's file is gone

    asyncio.run(scenario())


def test_a_put_cancelled_while_its_commit_is_queued_is_whole_or_absent(blob_store: LocalBlobStore) -> None:
    async def scenario() -> None:
        data = os.urandom(LARGE)
        task = asyncio.create_task(blob_store.put("k/late", data))
        for _ in range(100):  # until it waits for the group commit
            await asyncio.sleep(0)
            if blob_store._pending:
                break
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
        body = await blob_store.get("k/late")
        assert body is None or await body.read() == data
        assert len(object_files(blob_store)) == (0 if body is None else 1)

    asyncio.run(scenario())


# -- crashes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("parts", [5, 100])  # fails while still inline / after spilling to a file
def test_a_source_failing_halfway_leaves_nothing_visible(blob_store: LocalBlobStore, parts: int) -> None:
    async def scenario() -> None:
        with pytest.raises(ConnectionResetError):
            await blob_store.put("k/partial", failing_halfway(parts=parts))
        assert await blob_store.get("k/partial") is None
        assert await blob_store.head("k/partial") is None
        assert (await blob_store.list()).objects == []
        assert files_under(blob_store.root / ".tmp") == []
        assert files_under(blob_store.root / "objects") == []

    asyncio.run(scenario())


@pytest.mark.parametrize("original_size", [SMALL, LARGE])
@pytest.mark.parametrize("parts", [3, 100])  # the new body fails while inline / after spilling
def test_a_failed_overwrite_keeps_the_previous_object(
    blob_store: LocalBlobStore, original_size: int, parts: int
) -> None:
    data = os.urandom(original_size)

    async def scenario() -> None:
        original = await blob_store.put("k/keep", data)
        objects_before = files_under(blob_store.root / "objects")
        with pytest.raises(ConnectionResetError):
            await blob_store.put("k/keep", failing_halfway(parts=parts))
        assert await blob_store.head("k/keep") == original
        body = await blob_store.get("k/keep")
        assert body is not None and await body.read() == data
        assert files_under(blob_store.root / "objects") == objects_before
        assert files_under(blob_store.root / ".tmp") == []

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

        chunk_size = int(sys.argv[3])

        async def body():
            for index in range(100):
                yield b"z" * chunk_size
                if index == 10:
                    os._exit(17)  # the process dies mid-write: no cleanup, no finally, no atexit

        await store.put("usr_1/blobs/crash", body())
        await store.put("usr_1/blobs/existing", body())

    asyncio.run(main())
    """
)


@pytest.mark.parametrize(
    ("chunk_size", "spilled"),
    [(65536, True), (1000, False)],  # dies after 11 chunks: 704 KiB in a temp file / 11 KB in memory
    ids=["file", "inline"],
)
def test_a_writer_killed_mid_put_leaves_nothing_visible(
    tmp_path: Path, manual_clock: ManualClock, chunk_size: int, spilled: bool
) -> None:
    root = tmp_path / "r2"
    before = LocalBlobStore(root, manual_clock)
    asyncio.run(before.put("usr_1/blobs/existing", b"old content"))
    before.close()

    done = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(root), str(SRC), str(chunk_size)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 17, done.stderr.decode()
    leftovers = files_under(root / ".tmp")
    if spilled:
        assert leftovers and leftovers[0].stat().st_size > 0  # the crash really happened mid-write
    else:
        assert leftovers == []  # an inline body was only ever in the writer's memory

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


def test_listing_mixes_inline_and_file_objects(blob_store: LocalBlobStore) -> None:
    sizes = {f"m/{index:02d}": (SMALL if index % 3 else LARGE) + index for index in range(12)}
    sizes["m/dir/inside"] = LARGE
    sizes["m/dir/other"] = SMALL

    async def scenario() -> None:
        infos = {}
        for key in sorted(sizes, reverse=True):  # insertion order must not matter
            infos[key] = await blob_store.put(key, os.urandom(sizes[key]), custom_metadata={"k": key})
        assert len(object_files(blob_store)) == 5

        listed = []
        cursor = None
        while True:
            page = await blob_store.list(prefix="m/", cursor=cursor, limit=5)
            listed += page.objects
            if not page.truncated:
                break
            cursor = page.cursor
        assert listed == [infos[key] for key in sorted(sizes)]

        rolled = await blob_store.list(prefix="m/", delimiter="/", limit=1000)
        assert [info.key for info in rolled.objects] == sorted(k for k in sizes if "dir" not in k)
        assert rolled.delimited_prefixes == ["m/dir/"]

    asyncio.run(scenario())


def test_list_validates_limit_and_cursor(blob_store: LocalBlobStore) -> None:
    for limit in (0, 1001):
        with pytest.raises(ValueError):
            asyncio.run(blob_store.list(limit=limit))
    with pytest.raises(ValueError):
        asyncio.run(blob_store.list(cursor="not a cursor!"))


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_objects_survive_reopening(tmp_path: Path, manual_clock: ManualClock, size: int) -> None:
    data = os.urandom(size)
    first = LocalBlobStore(tmp_path / "r2", manual_clock)
    info = asyncio.run(first.put("k/persist", data, custom_metadata={"a": "b"}, content_type="x/y"))
    first.close()
    second = LocalBlobStore(tmp_path / "r2", manual_clock)
    try:
        assert asyncio.run(second.head("k/persist")) == info
        body = asyncio.run(second.get("k/persist"))
        assert body is not None and asyncio.run(body.read()) == data
    finally:
        second.close()


# -- upgrade ---------------------------------------------------------------------------------------

INDEX_BEFORE_INLINE_BODIES = """
CREATE TABLE objects (
    key              TEXT PRIMARY KEY,
    file_id          TEXT NOT NULL,
    size             INTEGER NOT NULL,
    etag             TEXT NOT NULL,
    uploaded         TEXT NOT NULL,
    custom_metadata  TEXT NOT NULL,
    content_type     TEXT
) WITHOUT ROWID
"""


def test_an_index_from_before_inline_bodies_is_upgraded(tmp_path: Path, manual_clock: ManualClock) -> None:
    root = tmp_path / "r2"
    file_id = "ab" + "0" * 30
    (root / "objects" / "ab").mkdir(parents=True)
    (root / "objects" / "ab" / file_id).write_bytes(b"old layout")
    connection = sqlite3.connect(root / "index.sqlite")
    connection.execute(INDEX_BEFORE_INLINE_BODIES)
    etag = hashlib.md5(b"old layout").hexdigest()
    connection.execute(
        "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("k/old", file_id, 10, etag, manual_clock.now().isoformat(), "{}", None),
    )
    connection.commit()
    connection.close()

    store = LocalBlobStore(root, manual_clock)
    try:

        async def scenario() -> None:
            body = await store.get("k/old")
            assert body is not None and await body.read() == b"old layout"
            await store.put("k/old", b"now inline")  # NULL file_id: refused by the old schema
            body = await store.get("k/old")
            assert body is not None and await body.read() == b"now inline"
            assert object_files(store) == []

        asyncio.run(scenario())
    finally:
        store.close()


INDEX_WITHOUT_ROWID = """
CREATE TABLE objects (
    key              TEXT PRIMARY KEY,
    file_id          TEXT,
    size             INTEGER NOT NULL,
    etag             TEXT NOT NULL,
    uploaded         TEXT NOT NULL,
    custom_metadata  TEXT NOT NULL,
    content_type     TEXT,
    body             BLOB,
    CHECK ((file_id IS NULL) <> (body IS NULL))
) WITHOUT ROWID
"""


def test_an_index_without_rowid_is_upgraded_with_its_inline_bodies(tmp_path: Path, manual_clock: ManualClock) -> None:
    root = tmp_path / "r2"
    root.mkdir()
    connection = sqlite3.connect(root / "index.sqlite")
    connection.execute(INDEX_WITHOUT_ROWID)
    uploaded = manual_clock.now().isoformat()
    for key, body in (("k/a", b"first"), ("k/b", b"second")):
        connection.execute(
            "INSERT INTO objects VALUES (?, NULL, ?, ?, ?, ?, ?, ?)",
            (key, len(body), hashlib.md5(body).hexdigest(), uploaded, '{"sha256": "x"}', "text/plain", body),
        )
    connection.commit()
    connection.close()

    store = LocalBlobStore(root, manual_clock)
    try:

        async def scenario() -> None:
            listed = await store.list(prefix="k/")
            assert [info.key for info in listed.objects] == ["k/a", "k/b"]
            assert listed.objects[0].custom_metadata == {"sha256": "x"} and listed.objects[0].content_type == "text/plain"
            for key, body in (("k/a", b"first"), ("k/b", b"second")):
                stored = await store.get(key)
                assert stored is not None and await stored.read() == body
            await store.put("k/c", b"third")
            assert [info.key for info in (await store.list(prefix="k/")).objects] == ["k/a", "k/b", "k/c"]

        asyncio.run(scenario())
    finally:
        store.close()
    sql = sqlite3.connect(root / "index.sqlite").execute("SELECT sql FROM sqlite_master WHERE name = 'objects'").fetchone()[0]
    assert "WITHOUT ROWID" not in sql
