"""Pause Python's cyclic garbage collector while a push or status builds its many small objects.

A scan of a big folder creates tens of thousands of tuples (the index, the pushed tree, the file
records) and none of them is part of a reference cycle, yet each 700 new container objects start a
collection that walks the young ones, and every tenth of those walks more: about a tenth of a
one-file push's CPU time on a 10,000-file folder. Reference counting still frees everything as
usual; only cycles wait for the collector to run again when the block ends.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block, unless someone else already did."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
