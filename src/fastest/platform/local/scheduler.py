"""The local runtime's stand-in for Cloudflare cron triggers: the same cron strings, fired in-process
once per matching minute while `fastest serve` runs."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Awaitable, Callable, Iterable

from fastest.domain.cron import CronSchedule, parse
from fastest.ports import Clock

log = logging.getLogger("fastest.scheduler")


class CronScheduler:
    def __init__(self, crons: Iterable[str], fire: Callable[[str], Awaitable[object]], clock: Clock) -> None:
        self._schedules: list[tuple[str, CronSchedule]] = [(cron, parse(cron)) for cron in crons]
        self._fire = fire
        self._clock = clock
        self._last_minute: datetime | None = None

    async def tick(self, moment: datetime) -> list[str]:
        """Fire every cron due in `moment`'s minute, at most once per minute. Returns what fired."""
        minute = moment.replace(second=0, microsecond=0)
        if minute == self._last_minute:
            return []
        self._last_minute = minute
        fired = []
        for cron, schedule in self._schedules:
            if schedule.matches(minute):
                try:
                    await self._fire(cron)
                except Exception:  # a failing job must not stop the scheduler
                    log.exception("cron %r failed", cron)
                fired.append(cron)
        return fired

    async def run_forever(self) -> None:
        while True:
            now = self._clock.now()
            next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
            await asyncio.sleep((next_minute - now).total_seconds())
            await self.tick(self._clock.now())
