"""The local runtime's HTTP server: an ASGI app behind uvicorn, with the cron scheduler beside it.

What it serves is decided above (`fastest.cli.serve` opens the platform, builds the app and the
scheduler); this module only runs them. SIGINT and SIGTERM stop accepting connections and let
in-flight requests finish; `run` then returns, and the caller closes the storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any, Iterator

import uvicorn

from fastest.platform.local import log_redaction
from fastest.platform.local.scheduler import CronScheduler


class _Server(uvicorn.Server):
    """uvicorn re-raises the stop signal after its graceful shutdown, so the process would die by
    signal (exit -15) before our storage is closed. A stop we asked for is a clean exit: handle the
    signals without re-raising them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


async def _serve_with_jobs(
    server: uvicorn.Server, scheduler: CronScheduler, start_alarms: Any = None, background: Any = None
) -> None:
    jobs_task = asyncio.create_task(scheduler.run_forever())
    if start_alarms is not None:  # session objects' alarms, those left by a previous run included
        start_alarms()
    try:
        await server.serve()
    finally:
        jobs_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await jobs_task
        # Deferred work (webhook first attempts) finishes before the storage closes; what does not
        # finish in time stays queued in D1 for the cron after the next start.
        drain = getattr(background, "drain", None)
        if drain is not None:
            with contextlib.suppress(Exception):
                await drain(timeout=20)


def run(
    app: Any, scheduler: CronScheduler, *, host: str, port: int, start_alarms: Any = None, background: Any = None,
    forwarded_allow_ips: str = "",
) -> None:
    """Serve `app` on host:port, firing `scheduler`'s crons meanwhile, until SIGINT or SIGTERM.

    `forwarded_allow_ips`: the proxies whose `X-Forwarded-For`/`-Proto` are believed (comma-separated
    addresses or networks). Empty: none, so the peer address is the client's — uvicorn's default
    would believe any process on this machine, letting it forge the address that per-IP limits, the
    audit log and the device page's local-owner check rely on."""
    # No permessage-deflate on WebSockets: conversation frames are small JSON events, fanned out to
    # every client of a conversation, and compressing each one for each client costs more than it saves.
    proxies = forwarded_allow_ips.strip()
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", lifespan="off", server_header=False, ws_per_message_deflate=False,
        proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
    )
    log_redaction.install()
    asyncio.run(_serve_with_jobs(_Server(config), scheduler, start_alarms, background))
