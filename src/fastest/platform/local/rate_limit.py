"""An in-process sliding-window rate limiter for the local runtime.

Exact for one process: each key keeps the times of its accepted hits inside the window (at most
`limit` of them), so "60 per minute" never lets 120 through across a window boundary the way a
fixed window can. Memory is bounded: keys idle for longer than their window are dropped, and past
`max_keys` the least recently used key goes first (an abuse limit forgetting a long-idle key is
harmless; growing without bound under a flood of distinct keys is not).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from fastest.ports import Clock, RateDecision


@dataclass(slots=True)
class _Window:
    seconds: float
    hits: deque[float] = field(default_factory=deque)  # accepted hit times, oldest first


class SlidingWindowRateLimiter:
    """The `RateLimiter` port: `hit(key, limit=, window_seconds=)` counts and decides in one step."""

    def __init__(self, clock: Clock, *, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self._clock = clock
        self._max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()  # least recently hit first

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> RateDecision:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("limit and window_seconds must be positive")
        now = self._clock.now().timestamp()
        self._drop_idle(now)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(seconds=window_seconds)
        else:
            self._windows.move_to_end(key)
            window.seconds = window_seconds
        hits = window.hits
        while hits and hits[0] <= now - window_seconds:
            hits.popleft()
        allowed = len(hits) < limit
        if allowed:
            hits.append(now)
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        return RateDecision(
            allowed=allowed,
            limit=limit,
            remaining=max(limit - len(hits), 0),
            reset_seconds=_seconds_until_a_slot_frees(hits, window_seconds, now),
        )

    def tracked_keys(self) -> int:
        """How many keys are held in memory (for tests of the memory bound)."""
        return len(self._windows)

    def _drop_idle(self, now: float) -> None:
        # Least recently hit keys come first, so the scan stops at the first one still active.
        while self._windows:
            key, window = next(iter(self._windows.items()))
            newest = window.hits[-1] if window.hits else -math.inf
            if newest > now - window.seconds:
                break
            del self._windows[key]


def _seconds_until_a_slot_frees(hits: deque[float], window_seconds: int, now: float) -> int:
    if not hits:
        return 0
    return max(math.ceil(hits[0] + window_seconds - now), 1)
