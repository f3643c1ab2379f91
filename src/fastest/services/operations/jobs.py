"""Background jobs, run by cron triggers on Cloudflare (`Default.scheduled`) and by hand locally
(`fastest jobs run NAME`).

Every job is idempotent and safe to run twice at once: each is a set-based statement or a sweep that
tolerates a concurrent sweep. `SCHEDULE` maps the cron strings of wrangler.toml's `[triggers]` to the
jobs they run; a cron string not listed runs nothing (and says so) rather than failing the trigger.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from fastest.platform import Platform
from fastest.services import action_items, billing, storage
from fastest.services.billing import entitlements
from fastest.services.identity import device_flow
from fastest.services.operations import maintenance
from fastest.services.safeguards import idempotency

log = logging.getLogger("fastest.jobs")

Job = Callable[[Platform], Awaitable[int]]


async def purge_idempotency_keys(platform: Platform) -> int:
    """Drop Idempotency-Key records past their lifetime (anonymous checkouts' keys included)."""
    return await idempotency.purge_expired(platform) + await billing.forget_expired_idempotency_keys(platform)


async def collect_garbage(platform: Platform) -> int:
    """Blob and manifest GC for every user (unreachable and past the grace period)."""
    return await storage.collect_garbage_all_users(platform)


async def purge_device_codes(platform: Platform) -> int:
    """Drop device authorizations a day past their expiry."""
    return await device_flow.purge_expired(platform)


async def atlas_index(platform: Platform) -> int:
    """One bounded step of every Atlas index still running (large trees index in steps)."""
    from fastest.services.intelligence import atlas

    return await atlas.continue_all(platform)


async def purge_expired_tokens(platform: Platform) -> int:
    """Drop bearer tokens a week past their expiry or revocation."""
    return await maintenance.purge_expired_tokens(platform)


async def retry_webhook_deliveries(platform: Platform) -> int:
    """Send the integration webhook messages that are due (retries, and first attempts left over)."""
    from fastest.services import webhooks

    return await webhooks.sweep(platform)


async def purge_webhook_deliveries(platform: Platform) -> int:
    """Drop webhook delivery logs and finished messages older than 30 days."""
    return await maintenance.purge_webhook_deliveries(platform)


async def recompute_storage_stats(platform: Platform) -> int:
    """Recompute every user's stored blob and manifest totals, and re-derive the plan-limit counters."""
    recomputed = await maintenance.recompute_storage_stats(platform)
    await entitlements.recompute_storage_usage(platform)  # the trigger-kept counters' self-check
    return recomputed


async def reconcile_subscriptions(platform: Platform) -> int:
    """Settle paid subscriptions whose period ended without a Paddle event (asks Paddle, or expires them)."""
    return await billing.reconcile_subscriptions(platform)


async def fail_stalled_deployments(platform: Platform) -> int:
    """Fail deployments with no progress for an hour (a client build whose client died), saying why in their log."""
    from fastest.services import deployments

    return await deployments.fail_stalled(platform)


async def refresh_action_items(platform: Platform) -> int:
    """Analyse workspaces whose tree moved (committed secrets, lockfiles, tests, binaries) for action items."""
    return await action_items.refresh_job(platform)


JOBS: dict[str, Job] = {
    "purge-idempotency-keys": purge_idempotency_keys,
    "purge-device-codes": purge_device_codes,
    "collect-garbage": collect_garbage,
    "atlas-index": atlas_index,
    "purge-expired-tokens": purge_expired_tokens,
    "retry-webhook-deliveries": retry_webhook_deliveries,
    "purge-webhook-deliveries": purge_webhook_deliveries,
    "recompute-storage-stats": recompute_storage_stats,
    "reconcile-subscriptions": reconcile_subscriptions,
    "refresh-action-items": refresh_action_items,
    "fail-stalled-deployments": fail_stalled_deployments,
}

# Keep in step with [triggers] crons in wrangler.toml.
SCHEDULE: dict[str, tuple[str, ...]] = {
    "*/15 * * * *": ("atlas-index", "refresh-action-items", "fail-stalled-deployments"),
    "0 3 * * *": ("purge-idempotency-keys", "purge-device-codes", "collect-garbage",
                  "purge-expired-tokens", "purge-webhook-deliveries", "recompute-storage-stats",
                  "reconcile-subscriptions"),
    "* * * * *": ("retry-webhook-deliveries",),
}


def describe() -> list[tuple[str, str, str]]:
    """(name, cron strings, description) of every job, for `fastest jobs list`."""
    crons = {name: [cron for cron, names in SCHEDULE.items() if name in names] for name in JOBS}
    return [
        (name, ", ".join(crons[name]) or "(by hand)", (job.__doc__ or "").strip().splitlines()[0] if job.__doc__ else "")
        for name, job in JOBS.items()
    ]


async def run(platform: Platform, name: str) -> int:
    """Run one job by name; returns how many items it processed."""
    if name not in JOBS:
        raise KeyError(f"unknown job {name!r}; known: {', '.join(sorted(JOBS))}")
    processed = await JOBS[name](platform)
    log.info("job %s processed %d item(s)", name, processed)
    return processed


async def run_due(platform: Platform, cron: str) -> dict[str, int]:
    """Run every job scheduled on this cron string. One failing job does not stop the others."""
    if cron not in SCHEDULE:
        log.warning("no jobs are scheduled on cron %r", cron)
    results: dict[str, int] = {}
    for name in SCHEDULE.get(cron, ()):
        try:
            results[name] = await run(platform, name)
        except Exception:
            log.exception("job %s failed", name)
            results[name] = -1
    return results
