"""The `Background` port on Workers: `ctx.waitUntil`, which keeps the isolate alive for work that
goes on after the response. The platform is shared by the requests of an isolate, but `ctx` belongs
to one invocation, so `src/entry.py` puts the invocation's `waitUntil` in a context variable
(`invocation`) that the tasks of that request inherit."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import Any, Callable, Coroutine, Iterator

_WAIT_UNTIL: contextvars.ContextVar[Callable[[Any], None] | None] = contextvars.ContextVar(
    "fastest_wait_until", default=None
)


@contextlib.contextmanager
def invocation(ctx: Any) -> Iterator[None]:
    """Within this block, `defer` hands work to this invocation's `ctx.waitUntil`."""
    wait_until = getattr(ctx, "waitUntil", None) if ctx is not None else None
    token = _WAIT_UNTIL.set(wait_until)
    try:
        yield
    finally:
        _WAIT_UNTIL.reset(token)


class WaitUntilBackground:
    def defer(self, work: Coroutine[Any, Any, Any]) -> bool:
        wait_until = _WAIT_UNTIL.get()
        if wait_until is None:  # outside an invocation we know of: the cron picks the work up
            work.close()
            return False
        task = asyncio.ensure_future(work)
        # Pyodide hands a Python future to JavaScript as a thenable, which waitUntil's Promise
        # conversion accepts.
        wait_until(task)
        return True
