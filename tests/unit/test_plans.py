"""Plans as configuration (domain/plans.py)."""

from __future__ import annotations

import pytest

from fastest.domain.plans import GIB, PlanConfigError, catalog


def make(plans_json="", prices=None, ai=200):
    return catalog(plans_json=plans_json, prices=prices or {}, default_ai_budget_calls=ai)


def test_defaults_free_pro_team_in_order_and_free_needs_no_paddle():
    known = make()
    assert [p.name for p in known.plans] == ["free", "pro", "team"]
    assert known.free.price_id is None and known.free.limit("ai_budget_calls") == 200
    assert known.free.limit("storage_bytes") == GIB
    assert all(not p.view()["purchasable"] for p in known.plans)  # no prices configured


def test_prices_make_paid_plans_purchasable_and_map_back():
    known = make(prices={"pro": "pri_a", "team": "pri_b"})
    assert known.by_price("pri_a").name == "pro" and known.by_price("pri_b").name == "team"
    assert [p.name for p in known.upgrades(known.free, "conversations")] == ["pro", "team"]
    assert known.best(["pro", "team", "nonsense"]).name == "team"
    assert known.best([]).name == "free"


def test_json_overrides_limits_and_adds_plans():
    known = make('{"free": {"conversations": 2}, "pro": {"storage_bytes": null}, "max": {"price_id": "pri_m", "deployments": 9}}')
    assert known.free.limit("conversations") == 2
    assert known.get("pro").limit("storage_bytes") is None  # unlimited
    assert known.get("max").price_id == "pri_m" and known.get("max").rank == 3
    assert known.get("max").limit("conversations") == 100  # a new plan starts from the free defaults


@pytest.mark.parametrize("bad", [
    "not json", "[]", '{"pro": 3}', '{"pro": {"storage_bytes": -1}}', '{"pro": {"storage_bytes": 1.5}}',
    '{"pro": {"storage_bytes": true}}', '{"pro": {"unknown": 1}}', '{"Bad Name": {}}',
    '{"pro": {"price_id": "p"}, "team": {"price_id": "p"}}',
])
def test_bad_configuration_fails_loudly(bad):
    with pytest.raises(PlanConfigError):
        make(bad)


def test_the_free_plan_is_never_purchasable():
    assert make('{"free": {"price_id": "pri_x"}}').free.price_id is None
