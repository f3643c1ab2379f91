"""The AI budget guardrail: each user may make `ai_budget_calls` model calls per window of
`ai_budget_window_seconds`; past that, AI routes answer 429 `ai_rate_limited` with
`ai_rate_limit: {resets_at, used, limit}` until the window turns.

The number of calls is the user's plan's `ai_budget_calls` (the free plan's default is
`ai_budget_calls`; null: unlimited), and the 429 then also names the plans that allow more (`upgrade`).

Windows are fixed (aligned on the epoch) so the count is one row per user and window, incremented in
one statement that refuses to pass the limit: two racing calls cannot both take the last unit.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastest.domain.ids import iso, parse_iso
from fastest.errors import AIRateLimited
from fastest.platform import Platform
from fastest.ports import D1_MAX_SAFE_INTEGER
from fastest.services.billing import entitlements

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _window(platform: Platform) -> tuple[str, str]:
    seconds = max(1, platform.settings.ai_budget_window_seconds)
    elapsed = int((platform.clock.now() - _EPOCH).total_seconds())
    start = _EPOCH + timedelta(seconds=elapsed - elapsed % seconds)
    return iso(start), iso(start + timedelta(seconds=seconds))


def retry_after(platform: Platform, resets_at: str) -> str:
    """The `Retry-After` seconds until the budget window turns (at least 1)."""
    return str(max(1, int((parse_iso(resets_at) - platform.clock.now()).total_seconds())))


async def spend(platform: Platform, user_id: str) -> dict[str, object]:
    """Take one unit of the user's budget: `{resets_at, used, limit}`, or raise AIRateLimited."""
    plan = await entitlements.current_plan(platform, user_id)
    plan_limit = plan.limit("ai_budget_calls")
    limit = D1_MAX_SAFE_INTEGER if plan_limit is None else plan_limit
    start, resets_at = _window(platform)
    row = None
    if limit > 0:
        row = await platform.db.prepare(
            "INSERT INTO ai_usage (user_id, window_start, used) VALUES (?, ?, 1) "
            "ON CONFLICT (user_id, window_start) DO UPDATE SET used = used + 1 WHERE ai_usage.used < ? RETURNING used"
        ).bind(user_id, start, limit).first()
    if row is None:
        used = await platform.db.prepare("SELECT used FROM ai_usage WHERE user_id = ? AND window_start = ?").bind(
            user_id, start
        ).first("used")
        status = {"resets_at": resets_at, "used": int(used or 0), "limit": limit}
        raise AIRateLimited(
            f"The AI budget of {limit} model calls per window is spent; it resets at {resets_at}.",
            extra={"ai_rate_limit": status, "plan": plan.name,
                   "upgrade": entitlements.upgrade_path(entitlements.plans(platform), plan, "ai_budget_calls")},
            headers={"Retry-After": retry_after(platform, resets_at)},
        )
    return {"resets_at": resets_at, "used": int(row["used"]), "limit": plan_limit}
