"""Progress bars on stderr, drawn only when stderr is a terminal (logs and pipes stay clean)."""

from __future__ import annotations

import sys
import threading
import time
TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import TextIO

REDRAW_SECONDS = 0.1
BAR_WIDTH = 24


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


class Progress:
    """One line, `label [#####.....] done/total (bytes)`, redrawn at most ten times a second.

    Thread-safe, since uploads and hashing advance it from a small pool. Disabled (every method a
    no-op) when the stream is not a TTY.
    """

    def __init__(self, label: str, total: int, *, total_bytes: int | None = None, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total = total
        self.total_bytes = total_bytes
        self.done = 0
        self.done_bytes = 0
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._drawn = False

    def advance(self, count: int = 1, nbytes: int = 0) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += count
            self.done_bytes += nbytes
            now = time.monotonic()
            if now - self._last_draw >= REDRAW_SECONDS or self.done >= self.total:
                self._last_draw = now
                self._draw()

    def _draw(self) -> None:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * BAR_WIDTH)
        line = f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total}"
        if self.total_bytes:
            line += f" ({human_bytes(self.done_bytes)} of {human_bytes(self.total_bytes)})"
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the line, so the summary that follows starts clean."""
        if self.enabled and self._drawn:
            with self._lock:
                self.stream.write("\r\x1b[K")
                self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
