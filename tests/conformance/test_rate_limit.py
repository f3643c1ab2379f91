"""The in-process sliding-window rate limiter: exact counts per window, bounded memory."""

from __future__ import annotations

import asyncio

import pytest

from fastest.platform.local.clock import ManualClock
from fastest.platform.local.rate_limit import SlidingWindowRateLimiter
from fastest.ports import RateDecision


def hit(
    limiter: SlidingWindowRateLimiter, key: str = "usr_1:write", limit: int = 3, window: int = 60
) -> RateDecision:
    return asyncio.run(limiter.hit(key, limit=limit, window_seconds=window))


def test_allows_up_to_the_limit_then_refuses(manual_clock: ManualClock) -> None:
    limiter = SlidingWindowRateLimiter(manual_clock)
    decisions = [hit(limiter) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(d.limit == 3 for d in decisions)
    assert decisions[-1].reset_seconds == 60


def test_the_window_slides_instead_of_resetting(manual_clock: ManualClock) -> None:
    limiter = SlidingWindowRateLimiter(manual_clock)
    hit(limiter, limit=4)  # t = 0
    manual_clock.advance(30)
    for _ in range(3):
        assert hit(limiter, limit=4).allowed  # t = 30
    refused = hit(limiter, limit=4)
    assert not refused.allowed and refused.reset_seconds == 30  # the hit at t = 0 frees a slot at 60
    manual_clock.advance(30)  # t = 60: the first hit has left the window, the other three have not
    assert hit(limiter, limit=4).allowed
    assert not hit(limiter, limit=4).allowed
    manual_clock.advance(30)  # t = 90: the t = 30 hits have left
    assert hit(limiter, limit=4).remaining == 2


def test_refused_hits_do_not_count(manual_clock: ManualClock) -> None:
    limiter = SlidingWindowRateLimiter(manual_clock)
    for _ in range(3):
        hit(limiter, limit=1)
    manual_clock.advance(60)
    assert hit(limiter, limit=1).allowed


def test_keys_are_independent(manual_clock: ManualClock) -> None:
    limiter = SlidingWindowRateLimiter(manual_clock)
    assert hit(limiter, key="usr_1", limit=1).allowed
    assert not hit(limiter, key="usr_1", limit=1).allowed
    assert hit(limiter, key="usr_2", limit=1).allowed


def test_memory_is_bounded(manual_clock: ManualClock) -> None:
    limiter = SlidingWindowRateLimiter(manual_clock, max_keys=100)

    async def flood() -> None:
        for index in range(1_000):
            await limiter.hit(f"ip:{index}", limit=3, window_seconds=60)

    asyncio.run(flood())
    assert limiter.tracked_keys() == 100
    manual_clock.advance(61)
    hit(limiter, key="fresh")
    assert limiter.tracked_keys() == 1  # idle keys are dropped once their window has passed


def test_invalid_arguments(manual_clock: ManualClock) -> None:
    limiter = SlidingWindowRateLimiter(manual_clock)
    with pytest.raises(ValueError):
        hit(limiter, limit=0)
    with pytest.raises(ValueError):
        hit(limiter, window=0)
