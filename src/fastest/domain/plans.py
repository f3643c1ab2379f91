"""Plans and their limits: configuration, not code paths.

Three plans exist by default, ordered from smallest: `free`, `pro`, `team`. `FASTEST_BILLING_PLANS`
(JSON) changes their limits or adds plans: `{"pro": {"storage_bytes": 10737418240}, "max": {...}}`
(a plan named there and not a default starts from the free plan's limits; a `price_id` member gives
its Paddle price id). The paid defaults take their price ids from `FASTEST_PADDLE_PRICE_PRO` /
`FASTEST_PADDLE_PRICE_TEAM`. A limit of `null` means unlimited. The free plan needs no price and no
Paddle at all; a paid plan without a price id is listed but cannot be bought.

Limits:
- `storage_bytes`: live blob and manifest bytes a user stores;
- `ai_budget_calls`: model calls per AI budget window (`FASTEST_AI_BUDGET_WINDOW_SECONDS`); the free
  plan's default is `FASTEST_AI_BUDGET_CALLS`;
- `deployments`: projects a user has deployed (re-deploys of one are free);
- `conversations`: conversations a user has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

GIB = 1024**3
LIMIT_NAMES = ("storage_bytes", "ai_budget_calls", "deployments", "conversations")
FREE = "free"
CHECKOUT_ROUTE = "/v1/billing/checkout"

_DEFAULTS: dict[str, dict[str, int | None]] = {
    "free": {"storage_bytes": 1 * GIB, "ai_budget_calls": None, "deployments": 3, "conversations": 100},
    "pro": {"storage_bytes": 50 * GIB, "ai_budget_calls": 2000, "deployments": 25, "conversations": None},
    "team": {"storage_bytes": 500 * GIB, "ai_budget_calls": 10000, "deployments": 200, "conversations": None},
}


class PlanConfigError(ValueError):
    """FASTEST_BILLING_PLANS is not what this module accepts (fails loudly at first use)."""


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    rank: int
    price_id: str | None
    limits: Mapping[str, int | None] = field(default_factory=dict)

    def limit(self, name: str) -> int | None:
        return self.limits.get(name)

    def allows_more_than(self, other: "Plan", name: str) -> bool:
        mine, theirs = self.limit(name), other.limit(name)
        return theirs is not None and (mine is None or mine > theirs)

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "price_id": self.price_id,
            "purchasable": self.price_id is not None,
            "limits": {n: self.limits.get(n) for n in LIMIT_NAMES},
        }


@dataclass(frozen=True, slots=True)
class Catalog:
    plans: tuple[Plan, ...]

    @property
    def free(self) -> Plan:
        return self.plans[0]

    def get(self, name: str) -> Plan | None:
        return next((p for p in self.plans if p.name == name), None)

    def by_price(self, price_id: str) -> Plan | None:
        return next((p for p in self.plans if p.price_id and p.price_id == price_id), None)

    def best(self, names: list[str]) -> Plan:
        """The highest-ranked of these plan names (unknown names ignored); free when none."""
        known = [p for p in (self.get(n) for n in names) if p is not None]
        return max(known, key=lambda p: p.rank, default=self.free)

    def upgrades(self, current: Plan, limit_name: str) -> list[Plan]:
        """Purchasable plans that allow more of `limit_name` than `current`."""
        return [p for p in self.plans if p.price_id and p.allows_more_than(current, limit_name)]


def _limit(plan: str, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PlanConfigError(f"FASTEST_BILLING_PLANS: {plan}.{name} must be a non-negative integer or null")
    return value


def catalog(*, plans_json: str, prices: Mapping[str, str], default_ai_budget_calls: int) -> Catalog:
    """The plans, ordered from smallest: the defaults, changed and extended by `plans_json`
    (FASTEST_BILLING_PLANS), with `prices` (plan → Paddle price id) for the paid defaults."""
    try:
        overrides = json.loads(plans_json) if plans_json.strip() else {}
    except ValueError as exc:
        raise PlanConfigError("FASTEST_BILLING_PLANS is not valid JSON") from exc
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise PlanConfigError("FASTEST_BILLING_PLANS must be an object of plan name → object")
    names = list(_DEFAULTS) + [n for n in overrides if n not in _DEFAULTS]
    plans: list[Plan] = []
    for rank, name in enumerate(names):
        if not name or not name.replace("_", "").replace("-", "").isalnum() or name != name.lower():
            raise PlanConfigError(f"FASTEST_BILLING_PLANS: plan name {name!r} must be lower-case letters, digits, - or _")
        base = dict(_DEFAULTS.get(name, _DEFAULTS[FREE]))
        if base["ai_budget_calls"] is None:  # the free plan's default: the server's AI budget
            base["ai_budget_calls"] = default_ai_budget_calls
        extra = dict(overrides.get(name, {}))
        price_id = extra.pop("price_id", None)
        for key, value in extra.items():
            if key not in LIMIT_NAMES:
                raise PlanConfigError(f"FASTEST_BILLING_PLANS: unknown limit {name}.{key}")
            base[key] = _limit(name, key, value)
        if price_id is not None and not isinstance(price_id, str):
            raise PlanConfigError(f"FASTEST_BILLING_PLANS: {name}.price_id must be a string")
        price = (price_id or prices.get(name) or "").strip() or None
        if name == FREE:
            price = None  # the free plan is never bought
        plans.append(Plan(name=name, rank=rank, price_id=price, limits=base))
    seen: set[str] = set()
    for plan in plans:
        if plan.price_id in seen:
            raise PlanConfigError(f"two plans share the Paddle price id {plan.price_id}")
        if plan.price_id:
            seen.add(plan.price_id)
    return Catalog(tuple(plans))
