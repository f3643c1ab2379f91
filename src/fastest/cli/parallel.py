"""A few threads sharing one keep-alive HTTP client: enough to hide round trips, no more."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Callable, Iterable, TypeVar

    T = TypeVar("T")
DEFAULT_THREADS = 4


def run_parallel(work: Callable[[T], None], items: Iterable[T], threads: int = DEFAULT_THREADS) -> None:
    """Run `work` over `items`; the first error is raised and work not yet started is cancelled."""
    items = list(items)
    if len(items) <= 1 or threads <= 1:
        for item in items:
            work(item)
        return
    from concurrent.futures import ThreadPoolExecutor  # only when there is something to overlap

    pool = ThreadPoolExecutor(max_workers=min(threads, len(items)))
    try:
        for future in [pool.submit(work, item) for item in items]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
