"""Clocks for the local runtime: the real one, and a manual one tests can move forward.

Every adapter that reasons about time (KV expiry, blob upload times, rate-limit windows) takes a
clock, so tests can cross a TTL or a window boundary without sleeping.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that only moves when told to (`advance`), for deterministic tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward and return the new time. Time never goes backwards."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when` (must not be earlier than now)."""
        if when.tzinfo is None:
            raise ValueError("ManualClock needs timezone-aware times")
        when = when.astimezone(timezone.utc)
        if when < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = when
