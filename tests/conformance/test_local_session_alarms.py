"""Alarms of the local Durable Objects, held to Cloudflare's semantics: one alarm per object, fired
when due under the object's lock, at-least-once (a failing handler is retried with backoff, a
handler cut short by the process dying fires again at the next start), kept across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fastest.platform.local import sessions as local_sessions
from fastest.platform.local.sessions import LocalSessionNamespace, LocalSessionStorage
from fastest.ports import SessionRequest, SessionResponse


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


class Alarmed:
    """A session object whose alarm handler records its calls, fails `failures` times first, and
    may set a new alarm from inside the handler."""

    def __init__(self, name: str, storage: LocalSessionStorage, calls: list[str], failures: list[int], again: list[int]) -> None:
        self.name, self.storage, self.calls, self.failures, self.again = name, storage, calls, failures, again

    async def fetch(self, request: SessionRequest) -> SessionResponse:
        return SessionResponse(status=200)

    async def alarm(self) -> None:
        self.calls.append(self.name)
        assert await self.storage.get_alarm() is None  # the running alarm is not "scheduled"
        if self.failures and self.failures[0] > 0:
            self.failures[0] -= 1
            raise RuntimeError("handler failed")
        if self.again:
            await self.storage.set_alarm(self.again.pop())


def namespace(root: Path, clock: Clock, calls: list[str], failures: list[int] | None = None, again: list[int] | None = None):
    failures = failures if failures is not None else []
    again = again if again is not None else []
    return LocalSessionNamespace(root, lambda name, storage: Alarmed(name, storage, calls, failures, again), now_ms=clock)


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(local_sessions, "ALARM_RETRY_BASE_SECONDS", 0.01)
    monkeypatch.setattr(local_sessions, "ALARM_POLL_SECONDS", 0.02)


def test_one_alarm_per_object_set_get_delete(tmp_path):
    async def scenario():
        clock, calls = Clock(), []
        ns = namespace(tmp_path, clock, calls)
        storage = ns._live_object("a").storage
        assert await storage.get_alarm() is None
        await storage.set_alarm(clock.ms + 60_000)
        await storage.set_alarm(clock.ms + 30_000)  # replaces
        assert await storage.get_alarm() == clock.ms + 30_000
        await storage.delete_alarm()
        assert await storage.get_alarm() is None
        with pytest.raises(TypeError):
            await storage.set_alarm("soon")
        ns.close()

    asyncio.run(scenario())


def test_fires_when_due_once_and_is_removed(tmp_path):
    async def scenario():
        clock, calls = Clock(), []
        ns = namespace(tmp_path, clock, calls)
        storage = ns._live_object("a").storage
        await storage.set_alarm(clock.ms + 5_000)
        await asyncio.sleep(0.1)
        assert calls == []  # not due yet
        clock.ms += 5_000
        await until(lambda: calls == ["a"])
        await asyncio.sleep(0.1)
        assert calls == ["a"] and await storage.get_alarm() is None
        ns.close()

    asyncio.run(scenario())


def test_a_failing_handler_is_retried_with_backoff(tmp_path):
    async def scenario():
        clock, calls = Clock(), []
        ns = namespace(tmp_path, clock, calls, failures=[2])
        storage = ns._live_object("a").storage
        await storage.set_alarm(clock.ms)
        await until(lambda: len(calls) == 1)
        await until(lambda: storage._alarm_row() is not None and storage._alarm_row()[1] == 1)
        assert storage._alarm_row()[0] > clock.ms  # rescheduled later, not in a loop
        clock.ms += 60_000
        await until(lambda: len(calls) == 2)
        await until(lambda: storage._alarm_row() is not None and storage._alarm_row()[1] == 2)
        clock.ms += 60_000
        await until(lambda: len(calls) == 3)
        await until(lambda: storage._alarm_row() is None)
        ns.close()

    asyncio.run(scenario())


def test_a_handler_that_sets_a_new_alarm_keeps_it(tmp_path):
    async def scenario():
        clock, calls = Clock(), []
        ns = namespace(tmp_path, clock, calls, again=[1_000_000 + 10_000])
        storage = ns._live_object("a").storage
        await storage.set_alarm(clock.ms)
        await until(lambda: calls == ["a"])
        await until(lambda: not ns._firing)
        assert await storage.get_alarm() == 1_000_000 + 10_000
        clock.ms += 10_000
        await until(lambda: calls == ["a", "a"])
        ns.close()

    asyncio.run(scenario())


def test_alarms_survive_a_restart(tmp_path):
    clock, calls = Clock(), []

    async def before():
        ns = namespace(tmp_path, clock, calls)
        await ns._live_object("later").storage.set_alarm(clock.ms + 1_000)
        ns.close()

    async def after():
        ns = namespace(tmp_path, clock, calls)
        ns.start_alarms()
        clock.ms += 1_000
        await until(lambda: calls == ["later"])
        ns.close()

    asyncio.run(before())
    assert calls == []
    asyncio.run(after())


def test_an_alarm_cut_short_by_a_crash_fires_again_at_the_next_start(tmp_path):
    clock, calls = Clock(), []

    async def crashed():
        ns = namespace(tmp_path, clock, calls)
        storage = ns._live_object("run").storage
        await storage.set_alarm(clock.ms + 3_600_000)
        assert storage.begin_alarm() is not None  # the handler started, then the process died
        ns.close()

    async def restarted():
        ns = namespace(tmp_path, clock, calls)
        ns.start_alarms()
        await until(lambda: calls == ["run"])  # due at once, not an hour later
        await until(lambda: not ns._firing)
        assert ns._live_object("run").storage._alarm_row() is None
        ns.close()

    asyncio.run(crashed())
    asyncio.run(restarted())


def test_objects_are_fired_independently(tmp_path):
    async def scenario():
        clock, calls = Clock(), []
        ns = namespace(tmp_path, clock, calls)
        for name in ("a", "b", "c"):
            await ns._live_object(name).storage.set_alarm(clock.ms)
        await until(lambda: sorted(calls) == ["a", "b", "c"])
        ns.close()

    asyncio.run(scenario())
