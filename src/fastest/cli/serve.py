"""`fastest serve`: the local runtime, put together.

Start-up work (migrations, the vault key, OpenCode's install when it is the agent) happens here,
once, before the socket opens: the platform
hosting conversation objects (`durable_objects.local`), the app over it, and the cron schedule of
wrangler.toml running in-process beside the server (`platform.local.server`). SIGINT and SIGTERM
stop accepting connections, let in-flight requests finish, close the storage, and exit 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

from durable_objects.local import open_platform
from fastest.api.deploy_sites import DeploymentSites
from fastest.app import create_app
from fastest.config import Settings
from fastest.platform.local import server
from fastest.platform.local.scheduler import CronScheduler
from fastest.services.operations import jobs

log = logging.getLogger("fastest")


def _install_opencode(data_dir: Path, settings: Settings) -> None:
    """With OpenCode as the agent, its binary is installed (from npm, once) before the first
    conversation needs it, unless FASTEST_OPENCODE_BIN names one or the operator's server
    (FASTEST_OPENCODE_URL) is the agent."""
    if settings.ai_provider.strip().lower() != "opencode" or settings.opencode_bin or settings.opencode_url:
        return
    import asyncio

    from fastest.platform.local import opencode

    prefix = opencode.npm_prefix(data_dir)
    if opencode.find_binary(prefix) is None:
        log.info("installing OpenCode (npm %s@%s) into %s", opencode.NPM_PACKAGE, opencode.OPENCODE_VERSION, prefix)
    try:
        asyncio.run(opencode.install(prefix))
    except opencode.OpenCodeUnavailable as error:
        log.error("%s", error)


def serve(*, host: str, port: int, data_dir: Path, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _install_opencode(data_dir, settings)
    platform = open_platform(data_dir, settings)
    app = create_app(lambda scope: platform)
    app = DeploymentSites(app, lambda scope: platform)  # local deployments' sites (*.localhost, /_deployments/)
    scheduler = CronScheduler(jobs.SCHEDULE, lambda cron: jobs.run_due(platform, cron), platform.clock)
    log.info("data in %s; serving on http://%s:%d", data_dir, host, port)
    try:
        server.run(app, scheduler, host=host, port=port, start_alarms=getattr(platform.sessions, "start_alarms", None),
                   background=platform.background, forwarded_allow_ips=settings.forwarded_allow_ips)
    finally:
        platform.close()
    log.info("stopped")
    return 0
