"""What the webhook senders of one platform share: each endpoint's sending slots, and the writes of
attempts finishing together, batched.

This is per-process (local) or per-isolate (Worker) state, so it lives on the platform object
(`Platform.service_state`), not in module globals. Its asyncio objects belong to one event loop, so
each loop gets its own set, dropped with the loop. An endpoint's slots exist while someone holds or
waits for one and go when the last leaves: nothing is ever cleared under a sender that holds a slot.
"""

from __future__ import annotations

import asyncio
import weakref
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastest.platform import Platform
from fastest.ports import Statement

PER_ENDPOINT_CONCURRENCY = 4
MAX_QUEUED_PER_ENDPOINT = 1000  # first attempts waiting for a slot; beyond, the cron takes over
STATE_KEY = "webhooks.senders"


def senders(platform: Platform) -> Senders:
    """The platform's senders' shared state (made on first use)."""
    found = platform.service_state.get(STATE_KEY)
    if found is None:
        found = platform.service_state[STATE_KEY] = Senders(platform)
    return found


class Senders:
    def __init__(self, platform: Platform, *, concurrency: int = PER_ENDPOINT_CONCURRENCY,
                 max_queued: int = MAX_QUEUED_PER_ENDPOINT) -> None:
        self._platform = platform
        self.concurrency = concurrency
        self.max_queued = max_queued
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()

    def _here(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState(self._platform)
        return state

    @asynccontextmanager
    async def endpoint_slot(self, endpoint_id: str) -> AsyncIterator[bool]:
        """Hold one of the endpoint's `concurrency` sending slots while inside (waiting for one
        first); False, holding none, when `max_queued` senders already wait for it."""
        gates = self._here().gates
        gate = gates.get(endpoint_id)
        if gate is None:
            gate = gates[endpoint_id] = _Gate(self.concurrency)
        if gate.waiting >= self.max_queued:
            yield False
            return
        gate.users += 1
        try:
            gate.waiting += 1
            try:
                await gate.semaphore.acquire()
            finally:
                gate.waiting -= 1
            try:
                yield True
            finally:
                gate.semaphore.release()
        finally:
            gate.users -= 1
            if gate.users == 0 and gates.get(endpoint_id) is gate:
                del gates[endpoint_id]  # nobody holds or waits for a slot: the next sender starts afresh

    def endpoints_tracked(self) -> int:
        """How many endpoints have slots held or waited for in this loop (what this state holds)."""
        return len(self._here().gates)

    async def write(self, statements: list[Statement]) -> None:
        """Commit one attempt's statements, all or nothing, batched with other attempts finishing now."""
        await self._here().coalescer.write(statements)


class _Gate:
    __slots__ = ("semaphore", "waiting", "users")

    def __init__(self, concurrency: int) -> None:
        self.semaphore = asyncio.Semaphore(concurrency)
        self.waiting = 0
        self.users = 0  # holding or waiting for a slot


class _LoopState:
    __slots__ = ("gates", "coalescer")

    def __init__(self, platform: Platform) -> None:
        self.gates: dict[str, _Gate] = {}
        self.coalescer = _Coalescer(platform)


class _Coalescer:
    """Attempts finishing at about the same time write their (independent) results in one D1 batch:
    each attempt's statements stay all-or-nothing (inside a larger all-or-nothing batch), and the
    commit and round trip are shared. If a combined batch fails, each attempt's statements are
    retried alone, so one bad write never takes the others down."""

    MAX_UNITS = 32

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._pending: list[tuple[list[Statement], asyncio.Future[None]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, statements: list[Statement]) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((statements, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_flush)
        await future

    def _start_flush(self) -> None:
        task = asyncio.get_running_loop().create_task(self._flush())
        self._tasks.add(task)  # held until done (the loop keeps only weak references to tasks)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self.MAX_UNITS):
            units = pending[start:start + self.MAX_UNITS]
            try:
                await self._platform.db.batch([statement for statements, _ in units for statement in statements])
                for _, future in units:
                    if not future.done():
                        future.set_result(None)
            except Exception:
                for statements, future in units:
                    try:
                        await self._platform.db.batch(statements)
                        if not future.done():
                            future.set_result(None)
                    except Exception as exc:  # noqa: PERF203 — each unit answers for itself
                        if not future.done():
                            future.set_exception(exc)
