"""The `Background` port on the local runtime: asyncio tasks the process keeps track of, so none is
garbage-collected mid-flight and `drain()` (awaited when the server stops) lets them finish."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

log = logging.getLogger("fastest.background")


class LocalBackground:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def defer(self, work: Coroutine[Any, Any, Any]) -> bool:
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:  # no running loop (a synchronous caller): the cron picks the work up
            work.close()
            return False
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the tasks of the running loop (including ones they start) to finish."""
        loop = asyncio.get_running_loop()
        while True:
            tasks = [t for t in self._tasks if t.get_loop() is loop and not t.done()]
            if not tasks:
                return
            await asyncio.wait(tasks, timeout=timeout)
            if timeout is not None:
                return
