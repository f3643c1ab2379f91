"""The local cron scheduler fires the wrangler.toml cron strings once per matching minute."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from fastest.platform.local.clock import ManualClock
from fastest.platform.local.scheduler import CronScheduler


def test_fires_matching_crons_once_per_minute_and_survives_failures():
    fired: list[str] = []

    async def fire(cron: str) -> None:
        fired.append(cron)
        if cron == "0 3 * * *":
            raise RuntimeError("job failed")

    clock = ManualClock(datetime(2026, 11, 22, 3, 0, 5, tzinfo=timezone.utc))
    scheduler = CronScheduler(["*/15 * * * *", "0 3 * * *"], fire, clock)

    async def scenario():
        assert await scheduler.tick(clock.now()) == ["*/15 * * * *", "0 3 * * *"]
        clock.advance(30)
        assert await scheduler.tick(clock.now()) == []  # same minute: not again
        clock.advance(60)
        assert await scheduler.tick(clock.now()) == []  # 03:01 matches nothing
        clock.advance(14 * 60)
        assert await scheduler.tick(clock.now()) == ["*/15 * * * *"]

    asyncio.run(scenario())
    assert fired == ["*/15 * * * *", "0 3 * * *", "*/15 * * * *"]
