"""What a user's plan allows, and the one check other code calls before it adds something:

    await entitlements.require(platform, user_id, "conversations", adding=1)

raises 402 `plan_limit_reached` when the user's usage plus `adding` would pass their plan's limit.
The problem says which limit, the usage, and how to upgrade (the plans that allow more, and the
checkout route). A user's plan is the best one among their subscriptions whose status still entitles
(active, trialing, past_due: Paddle is still collecting); without any, the free plan.

Usage is read in the same statement that reads the plan: live blob and manifest bytes from
`storage_usage` (kept by triggers on blob_refs and manifests), conversations counted. A check and
the write it guards are two steps, so two requests racing at the very limit can each pass: a limit
can be overshot by what one concurrent request adds.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from fastest.domain.plans import CHECKOUT_ROUTE, LIMIT_NAMES, Catalog, Plan, catalog
from fastest.errors import PlanLimitReached
from fastest.platform import Platform

ENTITLING_STATUSES = ("active", "trialing", "past_due")
_ENTITLING_SQL = "('active', 'trialing', 'past_due')"
_PLANS_SQL = (
    "SELECT group_concat(plan, ',') FROM billing_subscriptions "
    f"WHERE user_id = ?1 AND status IN {_ENTITLING_SQL}"
)

# How much of each limit a user uses now (SQL over ?1 = user id). `deployments` is counted by the
# deployments feature: it passes `used=` or registers a counter in USAGE_COUNTERS.
_USAGE_SQL = {
    # Kept by triggers (migration 0009): one row, not a sum over every object.
    "storage_bytes": "COALESCE((SELECT bytes FROM storage_usage WHERE user_id = ?1), 0)",
    "conversations": "(SELECT COUNT(*) FROM conversations WHERE user_id = ?1)",
}
USAGE_COUNTERS: dict[str, Callable[[Platform, str], Awaitable[int]]] = {}


def plans(platform: Platform) -> Catalog:
    settings = platform.settings
    return catalog(
        plans_json=settings.billing_plans,
        prices={"pro": settings.paddle_price_pro, "team": settings.paddle_price_team},
        default_ai_budget_calls=settings.ai_budget_calls,
    )


def _plan_of(known: Catalog, concatenated: str | None) -> Plan:
    return known.best([n for n in (concatenated or "").split(",") if n])


async def current_plan(platform: Platform, user_id: str) -> Plan:
    row = await platform.db.prepare(f"SELECT ({_PLANS_SQL}) AS plans").bind(user_id).first()
    return _plan_of(plans(platform), row["plans"] if row else None)


async def usage(platform: Platform, user_id: str, name: str) -> int | None:
    """What the user uses of `name` now (None: not countable here)."""
    if name in USAGE_COUNTERS:
        return await USAGE_COUNTERS[name](platform, user_id)
    sql = _USAGE_SQL.get(name)
    if sql is None:
        return None
    return int(await platform.db.prepare(f"SELECT {sql} AS used").bind(user_id).first("used") or 0)


def upgrade_path(known: Catalog, plan: Plan, name: str) -> dict[str, Any]:
    return {
        "plans": [{"name": p.name, "limit": p.limit(name)} for p in known.upgrades(plan, name)],
        "checkout": {"method": "POST", "path": CHECKOUT_ROUTE, "body": {"plan": "<plan name>"}},
    }


def limit_reached(known: Catalog, plan: Plan, name: str, *, limit: int, used: int, adding: int) -> PlanLimitReached:
    what = name.replace("_", " ")
    better = [p.name for p in known.upgrades(plan, name)]
    hint = f" Upgrade to {' or '.join(better)} with POST {CHECKOUT_ROUTE}." if better else ""
    return PlanLimitReached(
        f"The {plan.name} plan allows {limit} {what}; you use {used} and this would add {adding}.{hint}",
        extra={
            "plan_limit": {"plan": plan.name, "limit_name": name, "limit": limit, "used": used, "adding": adding},
            "upgrade": upgrade_path(known, plan, name),
        },
    )


async def require(platform: Platform, user_id: str, name: str, *, adding: int = 1, used: int | None = None) -> None:
    """Raise 402 `plan_limit_reached` if `used + adding` would pass the user's plan's `name` limit.

    `used` is counted here for storage_bytes and conversations; other limits (deployments) pass it or
    register a counter in USAGE_COUNTERS. `adding=0` checks that the user is not already over.
    """
    if name not in LIMIT_NAMES:
        raise ValueError(f"unknown limit {name!r}")
    known = plans(platform)
    sql = _USAGE_SQL.get(name) if used is None and name not in USAGE_COUNTERS else None
    if sql is not None:  # the plan and the usage in one round trip
        row = await platform.db.prepare(f"SELECT ({_PLANS_SQL}) AS plans, {sql} AS used").bind(user_id).first()
        plan, used = _plan_of(known, row["plans"]), int(row["used"] or 0)
    else:
        plan = await current_plan(platform, user_id)
        if used is None:
            counted = await usage(platform, user_id, name)
            if counted is None:
                raise ValueError(f"the usage of {name!r} is not counted here: pass used=")
            used = counted
    limit = plan.limit(name)
    if limit is not None and used + adding > limit:
        raise limit_reached(known, plan, name, limit=limit, used=used, adding=adding)


async def summary(platform: Platform, user_id: str) -> dict[str, Any]:
    """`{plan, limits, usage}` for the subscription view (usage: what is counted here)."""
    plan = await current_plan(platform, user_id)
    counted = {name: await usage(platform, user_id, name) for name in LIMIT_NAMES}
    return {
        "plan": plan.name,
        "limits": {n: plan.limit(n) for n in LIMIT_NAMES},
        "usage": {n: v for n, v in counted.items() if v is not None},
    }


RECOMPUTE_PAGE = 200


async def recompute_storage_usage(platform: Platform) -> int:
    """Set every user's `storage_usage` to the sum of their live blob and manifest sizes, a page of
    users per statement; returns how many counters it created or corrected. The triggers keep them right;
    this is the self-check for the storage-stats job (each statement reads the sums and writes the
    counter in one step, so an upload running meanwhile is never lost). Safe to run twice at once."""
    fixed, after = 0, ""
    while True:
        page = (await platform.db.prepare(
            "SELECT id FROM users WHERE id > ? ORDER BY id LIMIT ?"
        ).bind(after, RECOMPUTE_PAGE).all()).results
        if not page:
            return fixed
        first, last = page[0]["id"], page[-1]["id"]
        result = await platform.db.prepare(
            "INSERT INTO storage_usage (user_id, bytes) SELECT u.id, "
            "(SELECT COALESCE(SUM(size), 0) FROM blob_refs WHERE user_id = u.id AND state = 'live') + "
            "(SELECT COALESCE(SUM(size), 0) FROM manifests WHERE user_id = u.id AND state = 'live') "
            "FROM users u WHERE u.id >= ? AND u.id <= ? "
            "ON CONFLICT (user_id) DO UPDATE SET bytes = excluded.bytes WHERE storage_usage.bytes <> excluded.bytes"
        ).bind(first, last).run()
        fixed += result.changes
        after = last
