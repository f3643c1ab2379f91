"""The local Durable Objects: one instance per name, serialized per instance, storage that persists."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from fastest.platform.local.sessions import LocalSessionNamespace, LocalSessionStorage
from fastest.ports import SessionRequest, SessionResponse


class Recorder:
    """A session object that logs when each request starts and ends, and counts in its storage."""

    def __init__(self, name: str, storage: LocalSessionStorage, log: list[str], created: list[str]) -> None:
        self.name = name
        self.storage = storage
        self.log = log
        created.append(name)

    async def fetch(self, request: SessionRequest) -> SessionResponse:
        self.log.append(f"start {self.name} {request.path}")
        count = (await self.storage.get("count")) or 0
        await asyncio.sleep(0.005)  # a turn that yields mid-way: another request could sneak in here
        await self.storage.put("count", count + 1)
        self.log.append(f"end {self.name} {request.path}")
        return SessionResponse(status=200, body=json.dumps({"count": count + 1}).encode())


class Namespace:
    """A namespace of Recorders plus what they recorded."""

    def __init__(self, root: Path) -> None:
        self.log: list[str] = []
        self.created: list[str] = []
        self.sessions = LocalSessionNamespace(
            root, lambda name, storage: Recorder(name, storage, self.log, self.created)
        )


@pytest.fixture
def namespace(tmp_path: Path) -> Any:
    ns = Namespace(tmp_path / "sessions")
    yield ns
    ns.sessions.close()


def request(path: str = "/") -> SessionRequest:
    return SessionRequest(method="POST", path=path)


def test_the_same_name_reaches_one_instance(namespace: Namespace) -> None:
    async def scenario() -> None:
        first = namespace.sessions.get("cnv_1")
        second = namespace.sessions.get("cnv_1")
        await first.fetch(request())
        response = await second.fetch(request())
        assert json.loads(response.body) == {"count": 2}
        assert namespace.created == ["cnv_1"]  # created lazily, once
        assert namespace.sessions.instance("cnv_1") is namespace.sessions.instance("cnv_1")

    asyncio.run(scenario())


def test_requests_to_one_instance_are_serialized(namespace: Namespace) -> None:
    async def scenario() -> None:
        stub = namespace.sessions.get("cnv_1")
        responses = await asyncio.gather(*(stub.fetch(request(f"/{i}")) for i in range(5)))
        # No lost updates: each request saw the previous one's write.
        assert sorted(json.loads(r.body)["count"] for r in responses) == [1, 2, 3, 4, 5]
        # No interleaving: every start is followed by its own end.
        for start, end in zip(namespace.log[::2], namespace.log[1::2]):
            assert start.startswith("start ") and end == start.replace("start", "end", 1)

    asyncio.run(scenario())


def test_different_instances_run_concurrently(tmp_path: Path) -> None:
    """Each of two objects waits for the other to have started: only concurrent requests finish."""

    class Rendezvous:
        def __init__(self, name: str, storage: LocalSessionStorage) -> None:
            self.name = name

        async def fetch(self, request: SessionRequest) -> SessionResponse:
            arrived[self.name].set()
            other = "b" if self.name == "a" else "a"
            await asyncio.wait_for(arrived[other].wait(), timeout=2)
            return SessionResponse(status=204)

    arrived: dict[str, asyncio.Event] = {}
    sessions = LocalSessionNamespace(tmp_path / "sessions", Rendezvous)

    async def scenario() -> None:
        arrived.update(a=asyncio.Event(), b=asyncio.Event())
        statuses = await asyncio.gather(
            sessions.get("a").fetch(request()), sessions.get("b").fetch(request())
        )
        assert [s.status for s in statuses] == [204, 204]

    try:
        asyncio.run(scenario())
    finally:
        sessions.close()


def test_storage_persists_across_a_new_namespace(tmp_path: Path) -> None:
    first = Namespace(tmp_path / "sessions")
    asyncio.run(first.sessions.get("cnv_1").fetch(request()))
    first.sessions.close()

    restarted = Namespace(tmp_path / "sessions")
    try:
        response = asyncio.run(restarted.sessions.get("cnv_1").fetch(request()))
        assert json.loads(response.body) == {"count": 2}
        other = asyncio.run(restarted.sessions.get("cnv_2").fetch(request()))
        assert json.loads(other.body) == {"count": 1}  # each object has its own storage
    finally:
        restarted.sessions.close()


def test_storage_files_are_named_by_the_hash_of_the_name(namespace: Namespace) -> None:
    name = "../../etc/passwd"
    asyncio.run(namespace.sessions.get(name).fetch(request()))
    expected = namespace.sessions.root / f"{hashlib.sha256(name.encode()).hexdigest()}.sqlite"
    assert namespace.sessions.storage_path(name) == expected
    assert expected.is_file()


def test_a_failing_factory_creates_nothing(tmp_path: Path) -> None:
    attempts: list[str] = []

    def flaky(name: str, storage: LocalSessionStorage) -> Any:
        attempts.append(name)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return Recorder(name, storage, [], [])

    sessions = LocalSessionNamespace(tmp_path / "sessions", flaky)
    try:
        with pytest.raises(RuntimeError):
            asyncio.run(sessions.get("x").fetch(request()))
        response = asyncio.run(sessions.get("x").fetch(request()))
        assert response.status == 200 and attempts == ["x", "x"]
    finally:
        sessions.close()


def test_storage_get_put_delete_list(tmp_path: Path) -> None:
    storage = LocalSessionStorage(tmp_path / "one.sqlite")

    async def scenario() -> None:
        assert await storage.get("missing") is None
        await storage.put("msg:002", {"text": "second", "n": [1, 2]})
        await storage.put("msg:001", {"text": "first"})
        await storage.put("meta", "title")
        assert await storage.get("msg:002") == {"text": "second", "n": [1, 2]}
        assert list((await storage.list(prefix="msg:")).items()) == [
            ("msg:001", {"text": "first"}),
            ("msg:002", {"text": "second", "n": [1, 2]}),
        ]
        assert set(await storage.list()) == {"meta", "msg:001", "msg:002"}
        # `start` (inclusive) and `limit`, as DO storage's list options.
        assert list(await storage.list(prefix="msg:", start="msg:002")) == ["msg:002"]
        assert list(await storage.list(prefix="msg:", start="a")) == ["msg:001", "msg:002"]  # before the prefix
        assert list(await storage.list(prefix="msg:", limit=1)) == ["msg:001"]
        assert await storage.list(prefix="msg:", start="msg:003") == {}
        with pytest.raises(ValueError):
            await storage.list(limit=0)
        assert await storage.delete("meta") is True
        assert await storage.delete("meta") is False
        with pytest.raises(ValueError):
            await storage.put("bad", {1, 2})  # not JSON
        with pytest.raises(ValueError):
            await storage.put("nan", float("nan"))
        with pytest.raises(ValueError):
            await storage.put("huge", "x" * 2_000_000)

    try:
        asyncio.run(scenario())
    finally:
        storage.close()


def test_storage_lists_in_reverse_between_start_and_end(tmp_path: Path) -> None:
    """DO storage's `reverse`: the last entries first; `start` stays the (inclusive) lower bound and
    `end` the (exclusive) upper one, and `limit` counts from the top."""
    storage = LocalSessionStorage(tmp_path / "one.sqlite")

    async def scenario() -> None:
        for n in range(1, 6):
            await storage.put(f"event:{n:03d}", {"n": n})
        await storage.put("eventz", "past the prefix")
        await storage.put("evens", "before the prefix")
        assert list(await storage.list(prefix="event:", reverse=True)) == [f"event:{n:03d}" for n in (5, 4, 3, 2, 1)]
        assert list(await storage.list(prefix="event:", reverse=True, limit=2)) == ["event:005", "event:004"]
        assert list(await storage.list(prefix="event:", end="event:004", reverse=True, limit=2)) == ["event:003", "event:002"]
        assert list(await storage.list(prefix="event:", start="event:002", end="event:004", reverse=True)) == ["event:003", "event:002"]
        assert list(await storage.list(prefix="event:", start="event:002", end="event:004")) == ["event:002", "event:003"]
        assert list(await storage.list(prefix="event:", end="event:001", reverse=True)) == []
        assert list(await storage.list(prefix="event:", end="f", reverse=True, limit=1)) == ["event:005"]  # end past the prefix
        assert list(await storage.list(end="event:", reverse=True)) == ["evens"]  # no prefix: the whole key space
        assert (await storage.list(prefix="event:", reverse=True, limit=1))["event:005"] == {"n": 5}
        with pytest.raises(ValueError):
            await storage.list(reverse=True, limit=0)

    try:
        asyncio.run(scenario())
    finally:
        storage.close()
