"""The `reconcile-subscriptions` job: subscriptions whose
period ended without an event are asked about at Paddle, or lapse when no Paddle is configured.
Idempotent, and two runs at once end in the same state as one."""

from __future__ import annotations

import asyncio

import pytest

from fastest.config import Settings
from fastest.services.operations import jobs
from tests.api.paddle_stub import API_KEY, PRICE_PRO, PRICE_TEAM, WEBHOOK_SECRET, FakePaddle, paddle_id
from tests.api.test_billing import deliver, iso_at, paddle_event, subscription_data
from tests.conftest import count_rows

DAY = 86400


def plan_of(client, caller) -> dict:
    return client.get("/v1/billing/subscription", headers=caller.headers).json()


def subscribe(client, clock, caller, *, ends_in_days: float = 1) -> str:
    sub = paddle_id("sub")
    data = subscription_data(caller.user_id, sub_id=sub, clock=clock, ends_in_days=ends_in_days)
    assert deliver(client, clock, paddle_event("subscription.created", data, occurred_at=iso_at(clock))).status_code == 200
    return sub


def run_twice_at_once(platform) -> list[int]:
    async def both():
        return await asyncio.gather(jobs.run(platform, "reconcile-subscriptions"),
                                    jobs.run(platform, "reconcile-subscriptions"))

    return asyncio.run(both())


def reconciliations(platform) -> int:
    return count_rows(platform, "SELECT COUNT(*) AS n FROM security_events WHERE type = 'billing.subscription_changed' "
                                "AND json_extract(data, '$.source') NOT LIKE 'Paddle %'")


def test_the_job_is_registered_daily():
    assert "reconcile-subscriptions" in jobs.JOBS
    assert "reconcile-subscriptions" in jobs.SCHEDULE["0 3 * * *"]


class TestWithoutPaddle:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(paddle_price_pro=PRICE_PRO, paddle_price_team=PRICE_TEAM, paddle_webhook_secrets=WEBHOOK_SECRET)

    def test_a_lapsed_period_downgrades_once_even_when_two_runs_race(self, client, alice, bob, clock, platform):
        lapsed = subscribe(client, clock, alice, ends_in_days=1)
        subscribe(client, clock, bob, ends_in_days=30)
        assert run_twice_at_once(platform) == [0, 0]  # nothing has ended yet
        clock.advance(3 * DAY)
        assert sorted(run_twice_at_once(platform)) == [0, 1]
        view = plan_of(client, alice)
        assert view["plan"] == "free" and view["subscriptions"][0]["status"] == "expired"
        assert view["subscriptions"][0]["id"] == lapsed
        assert plan_of(client, bob)["plan"] == "pro"
        assert jobs.JOBS["reconcile-subscriptions"] and asyncio.run(jobs.run(platform, "reconcile-subscriptions")) == 0
        assert reconciliations(platform) == 1

    def test_a_renewal_paddle_delivers_late_still_wins(self, client, alice, clock, platform):
        sub = subscribe(client, clock, alice, ends_in_days=1)
        clock.advance(3 * DAY)
        asyncio.run(jobs.run(platform, "reconcile-subscriptions"))
        assert plan_of(client, alice)["plan"] == "free"
        # Paddle renewed it 2 days ago (after the period ended); the notification arrives now.
        renewed = subscription_data(alice.user_id, sub_id=sub, clock=clock, ends_in_days=28)
        event = paddle_event("subscription.updated", renewed, occurred_at=iso_at(clock, -2 * DAY))
        assert deliver(client, clock, event).json()["outcome"] == "applied"
        assert plan_of(client, alice)["plan"] == "pro"


class TestWithPaddle:
    @pytest.fixture
    def paddle(self):
        with FakePaddle() as fake:
            yield fake
        assert fake.problems == []

    @pytest.fixture
    def settings(self, paddle) -> Settings:
        return Settings(paddle_api_url=paddle.url, paddle_api_key=API_KEY, paddle_price_pro=PRICE_PRO,
                        paddle_price_team=PRICE_TEAM, paddle_webhook_secrets=WEBHOOK_SECRET)

    def test_paddles_answer_is_applied_once(self, client, alice, clock, platform, paddle):
        sub = subscribe(client, clock, alice, ends_in_days=1)
        clock.advance(3 * DAY)
        paddle.subscriptions[sub] = {
            **subscription_data(alice.user_id, sub_id=sub, clock=clock, price=PRICE_TEAM, ends_in_days=27),
            "updated_at": iso_at(clock, -2 * DAY),
        }
        assert sorted(run_twice_at_once(platform)) == [0, 1]
        assert len(paddle.calls("GET", f"/subscriptions/{sub}")) == 2
        view = plan_of(client, alice)
        assert view["plan"] == "team" and view["status"] == "active"
        assert view["current_period_end"] == paddle.subscriptions[sub]["current_billing_period"]["ends_at"]
        assert reconciliations(platform) == 1
        # The period now ends in the future: the next run leaves it alone.
        assert asyncio.run(jobs.run(platform, "reconcile-subscriptions")) == 0

    def test_a_canceled_subscription_at_paddle_downgrades(self, client, alice, clock, platform, paddle):
        sub = subscribe(client, clock, alice, ends_in_days=1)
        clock.advance(2 * DAY)
        paddle.subscriptions[sub] = {**subscription_data(alice.user_id, sub_id=sub, clock=clock, status="canceled"),
                                     "updated_at": iso_at(clock)}
        assert asyncio.run(jobs.run(platform, "reconcile-subscriptions")) == 1
        assert plan_of(client, alice)["plan"] == "free"

    def test_a_paddle_refusal_leaves_the_subscription_as_is(self, client, alice, clock, platform, paddle):
        subscribe(client, clock, alice, ends_in_days=1)
        clock.advance(2 * DAY)
        # The stand-in does not know the subscription: a 404 from Paddle changes nothing.
        assert asyncio.run(jobs.run(platform, "reconcile-subscriptions")) == 0
        assert plan_of(client, alice)["plan"] == "pro"
