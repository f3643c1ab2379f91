"""The Worker's clock.

On Workers, time only advances across I/O (a Spectre mitigation): two readings inside one pure
computation are equal. That is fine for timestamps and windows, which is all the app uses it for.
"""

from __future__ import annotations

from datetime import datetime, timezone


class WorkersClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)
