"""`RateLimiter` for the Worker: an in-isolate sliding window, optionally capped by the Workers Rate
Limiting binding (`env.RATE_LIMITER`, see wrangler.toml).

The approximation, stated plainly (DESIGN §3: fine for abuse limits, never for quotas):

- The sliding window lives in the isolate's memory. Cloudflare runs many isolates (per location, and
  more under load) and recycles them, so each counts only the requests it served: a client spread
  over N isolates can get up to N × limit per window. It does give each route class its own limit
  and accurate `remaining` / `reset_seconds` for the headers.
- The binding counts per key across the isolates of a Cloudflare location, but with one limit and
  period fixed in wrangler.toml (not per call) and no remaining count. It is therefore a shared
  ceiling: a hit is allowed only if the local window and the binding both allow it.

Exact counting (quotas, billing) needs a Durable Object counter, not this.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from typing import Any, Callable

from fastest.platform.cloudflare.interop import field
from fastest.ports import RateDecision

# Keys tracked per isolate; the least recently used is forgotten first (an isolate has 128 MB).
DEFAULT_MAX_KEYS = 10_000


class SlidingWindowLimiter:
    """A sliding-window log per key: at most `limit` hits in any `window_seconds`. Same decisions
    as the local runtime's limiter; keys idle for a whole window are dropped, and at most
    `max_keys` are kept (least recently hit forgotten first)."""

    def __init__(self, *, max_keys: int = DEFAULT_MAX_KEYS, monotonic: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self._max_keys = max_keys
        self._monotonic = monotonic
        self._windows: OrderedDict[str, tuple[float, deque[float]]] = OrderedDict()  # key → (seconds, hits)

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> RateDecision:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("limit and window_seconds must be positive")
        now = self._monotonic()
        self._drop_idle(now)
        _, hits = self._windows.pop(key, (window_seconds, deque()))
        self._windows[key] = (window_seconds, hits)  # most recently hit last
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
            reset_seconds=max(math.ceil(hits[0] + window_seconds - now), 1) if hits else 0,
        )

    def tracked_keys(self) -> int:
        return len(self._windows)

    def _drop_idle(self, now: float) -> None:
        while self._windows:
            key, (seconds, hits) = next(iter(self._windows.items()))
            if hits and hits[-1] > now - seconds:
                break
            del self._windows[key]


class BindingCappedLimiter:
    """The local window, capped by a Workers Rate Limiting binding shared across isolates."""

    def __init__(self, binding: Any, local: SlidingWindowLimiter | None = None) -> None:
        self._binding = binding
        self._local = local or SlidingWindowLimiter()

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> RateDecision:
        decision = await self._local.hit(key, limit=limit, window_seconds=window_seconds)
        if not decision.allowed:
            return decision
        outcome = await self._binding.limit(key=key)
        if field(outcome, "success", True):
            return decision
        # Refused by the shared ceiling: its period is the binding's, at most one window.
        return RateDecision(allowed=False, limit=limit, remaining=0, reset_seconds=window_seconds)
