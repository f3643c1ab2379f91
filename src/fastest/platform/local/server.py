"""`fastest serve`: the local runtime behind uvicorn.

Start-up work (migrations, the vault key) happens here, once, before the socket opens; the cron
schedule of wrangler.toml runs in-process beside the server. SIGINT and SIGTERM stop accepting
connections, let in-flight requests finish, close the storage, and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Iterator

import uvicorn

from fastest.app import create_app
from fastest.config import Settings
from fastest.platform.local import open_local_platform
from fastest.platform.local.scheduler import CronScheduler
from fastest.services import jobs

log = logging.getLogger("fastest")


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


async def _serve_with_jobs(server: uvicorn.Server, scheduler: CronScheduler, start_alarms=None) -> None:
    jobs_task = asyncio.create_task(scheduler.run_forever())
    if start_alarms is not None:  # session objects' alarms, those left by a previous run included
        start_alarms()
    try:
        await server.serve()
    finally:
        jobs_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await jobs_task


def serve(*, host: str, port: int, data_dir: Path, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    platform = open_local_platform(data_dir, settings)
    app = create_app(lambda scope: platform)
    # No permessage-deflate on WebSockets: conversation frames are small JSON events, fanned out to
    # every client of a conversation, and compressing each one for each client costs more than it saves.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", lifespan="off", server_header=False, ws_per_message_deflate=False
    )
    server = _Server(config)
    scheduler = CronScheduler(jobs.SCHEDULE, lambda cron: jobs.run_due(platform, cron), platform.clock)
    log.info("data in %s; serving on http://%s:%d", data_dir, host, port)
    try:
        asyncio.run(_serve_with_jobs(server, scheduler, getattr(platform.sessions, "start_alarms", None)))
    finally:
        platform.close()
    log.info("stopped")
    return 0
