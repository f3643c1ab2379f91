"""Per-user request budgets by route class, reported with the IETF `RateLimit` headers."""

from __future__ import annotations

from fastest.errors import RateLimited
from fastest.platform import Platform
from fastest.ports import RateDecision

WINDOW_SECONDS = 60


def limit_for(platform: Platform, route_class: str) -> int:
    if route_class == "ai":
        return platform.settings.ai_rate_limit_per_minute
    if route_class == "sync":
        return platform.settings.sync_rate_limit_per_minute
    return platform.settings.rate_limit_per_minute


def rate_limit_headers(route_class: str, decision: RateDecision) -> dict[str, str]:
    """`RateLimit-Policy` and `RateLimit` as in draft-ietf-httpapi-ratelimit-headers."""
    return {
        "RateLimit-Policy": f'"{route_class}";q={decision.limit};w={WINDOW_SECONDS}',
        "RateLimit": f'"{route_class}";r={decision.remaining};t={decision.reset_seconds}',
    }


async def enforce(platform: Platform, subject: str, route_class: str = "default") -> RateDecision:
    """Count one request for `subject` (a user id); raise 429 with `Retry-After` when over budget."""
    limit = limit_for(platform, route_class)
    decision = await platform.rate_limiter.hit(
        f"{route_class}:{subject}", limit=limit, window_seconds=WINDOW_SECONDS
    )
    if not decision.allowed:
        retry_after = max(1, decision.reset_seconds)
        raise RateLimited(
            f"Rate limit of {limit} requests per minute exceeded; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after), **rate_limit_headers(route_class, decision)},
        )
    return decision
