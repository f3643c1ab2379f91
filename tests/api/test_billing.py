"""Billing through the HTTP API: plans, checkout against a loopback Paddle, the public
status, the subscription, and Paddle's signed webhook (exactly once, never backwards)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from fastest.config import Settings
from fastest.domain.paddle_signature import sign
from fastest.platform.local.clock import ManualClock
from tests.api.paddle_stub import API_KEY, PRICE_PRO, PRICE_TEAM, WEBHOOK_SECRET, FakePaddle, paddle_id
from fastest.services.operations import jobs
from tests.conftest import assert_problem, count_rows, make_caller, run

VECTOR_SECRET = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh"
VECTOR_TS = 1696195954
VECTOR_HEADER = f"ts={VECTOR_TS};h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"


@pytest.fixture
def clock() -> ManualClock:
    # Paddle's published vector is signed at this instant: the server's clock starts there.
    return ManualClock(datetime.fromtimestamp(VECTOR_TS, tz=timezone.utc))


@pytest.fixture
def paddle():
    with FakePaddle() as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
def settings(paddle) -> Settings:
    return Settings(
        paddle_api_url=paddle.url, paddle_api_key=API_KEY, paddle_price_pro=PRICE_PRO, paddle_price_team=PRICE_TEAM,
        paddle_webhook_secrets=f"pdl_ntf_retired_secret, {WEBHOOK_SECRET}, {VECTOR_SECRET}",
    )


def iso_at(clock: ManualClock, seconds: float = 0) -> str:
    return (clock.now() + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def paddle_event(event_type: str, data: dict, *, occurred_at: str, event_id: str | None = None) -> dict:
    return {"event_id": event_id or paddle_id("evt"), "event_type": event_type, "occurred_at": occurred_at,
            "notification_id": paddle_id("ntf"), "data": data}


def deliver(client, clock, event: dict | bytes, *, secret: str = WEBHOOK_SECRET, header: str | None = None, ts=None):
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    ts = int(clock.now().timestamp()) if ts is None else ts
    headers = {"Content-Type": "application/json"}
    signature = header if header is not None else sign(secret, ts, body)
    if signature:
        headers["Paddle-Signature"] = signature
    return client.post("/v1/webhooks/paddle", content=body, headers=headers)


def subscription_data(user_id: str | None, *, sub_id: str, status: str = "active", price: str = PRICE_PRO,
                      ends_in_days: float = 30, clock: ManualClock, checkout_id: str | None = None) -> dict:
    custom = {k: v for k, v in {"user_id": user_id, "checkout_id": checkout_id}.items() if v}
    return {
        "id": sub_id, "status": status, "customer_id": paddle_id("ctm"), "custom_data": custom or None,
        "items": [{"price": {"id": price}, "quantity": 1, "status": "active"}],
        "current_billing_period": {"starts_at": iso_at(clock), "ends_at": iso_at(clock, ends_in_days * 86400)},
    }


def plan_of(client, caller) -> dict:
    response = client.get("/v1/billing/subscription", headers=caller.headers)
    assert response.status_code == 200, response.text
    return response.json()


# -- plans ------------------------------------------------------------------------------------------


def test_plans_are_public_with_price_ids_and_limits(client):
    response = client.get("/v1/billing/plans")
    assert response.status_code == 200
    plans = {p["name"]: p for p in response.json()["plans"]}
    assert list(plans) == ["free", "pro", "team"]
    assert plans["free"]["price_id"] is None and not plans["free"]["purchasable"]
    assert plans["pro"]["price_id"] == PRICE_PRO and plans["pro"]["purchasable"]
    assert set(plans["team"]["limits"]) == {"storage_bytes", "ai_budget_calls", "deployments", "conversations"}
    assert response.json()["paddle_configured"] is True


@pytest.mark.parametrize("settings", [Settings()])
def test_the_free_plan_works_with_no_paddle_configuration(client, alice, settings):
    plans = client.get("/v1/billing/plans").json()
    assert plans["paddle_configured"] is False and not any(p["purchasable"] for p in plans["plans"])
    assert plan_of(client, alice)["plan"] == "free"
    assert_problem(client.post("/v1/billing/checkout", headers=alice.headers, json={"plan": "pro"}), 422,
                   "plan_not_purchasable")
    # A webhook with no secret configured is refused like any bad signature.
    assert_problem(client.post("/v1/webhooks/paddle", content=b"{}", headers={"Paddle-Signature": "ts=1;h1=x"}),
                   400, "invalid_signature")


# -- checkout ---------------------------------------------------------------------------------------


def test_checkout_signed_in_creates_a_paddle_transaction_bound_to_the_user(client, alice, paddle, platform):
    response = client.post("/v1/billing/checkout", headers=alice.headers, json={"plan": "pro"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["checkout_id"].startswith("chk_") and body["checkout_url"].startswith("https://pay.example.test/")
    (customer,) = paddle.calls("POST", "/customers")
    assert customer["json"] == {"email": alice.email}
    (transaction,) = paddle.calls("POST", "/transactions")
    sent = transaction["json"]
    assert sent["items"] == [{"price_id": PRICE_PRO, "quantity": 1}]
    assert sent["customer_id"] == paddle.customers[alice.email]
    assert sent["custom_data"] == {"checkout_id": body["checkout_id"], "plan": "pro", "user_id": alice.user_id}
    assert transaction["headers"]["authorization"] == f"Bearer {API_KEY}"
    # Public status: no personal data.
    status = client.get(f"/v1/billing/status/{body['checkout_id']}")
    assert status.status_code == 200 and status.json() == {"checkout_id": body["checkout_id"], "status": "open", "plan": "pro"}
    assert alice.email not in status.text and alice.user_id not in status.text
    events = client.get("/v1/audit", headers=alice.headers).json()["events"]
    assert events[0]["type"] == "billing.checkout_created" and events[0]["data"]["checkout_id"] == body["checkout_id"]


def test_checkout_replays_under_the_same_idempotency_key(client, alice, paddle):
    headers = {**alice.headers, "Idempotency-Key": "upgrade-1"}
    first = client.post("/v1/billing/checkout", headers=headers, json={"plan": "pro"})
    again = client.post("/v1/billing/checkout", headers=headers, json={"plan": "pro"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(paddle.calls("POST", "/transactions")) == 1
    assert_problem(client.post("/v1/billing/checkout", headers=headers, json={"plan": "team"}), 422,
                   "idempotency_key_reused")


def test_an_existing_paddle_customer_is_reused(client, alice, paddle):
    paddle.customers[alice.email] = existing = paddle_id("ctm")
    assert client.post("/v1/billing/checkout", headers=alice.headers, json={"plan": "team"}).status_code == 201
    (transaction,) = paddle.calls("POST", "/transactions")
    assert transaction["json"]["customer_id"] == existing
    assert transaction["json"]["items"][0]["price_id"] == PRICE_TEAM


def test_anonymous_checkout_with_an_email_and_its_idempotent_replay(client, paddle, platform):
    headers = {"Idempotency-Key": "anon-1"}
    body = {"plan": "pro", "email": "buyer@example.com"}
    first = client.post("/v1/billing/checkout", headers=headers, json=body)
    assert first.status_code == 201, first.text
    again = client.post("/v1/billing/checkout", headers=headers, json=body)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(paddle.calls("POST", "/transactions")) == 1
    sent = paddle.calls("POST", "/transactions")[0]["json"]
    assert sent["custom_data"] == {"checkout_id": first.json()["checkout_id"], "plan": "pro"}
    assert_problem(client.post("/v1/billing/checkout", headers=headers, json={**body, "plan": "team"}), 422,
                   "idempotency_key_reused")
    assert_problem(client.post("/v1/billing/checkout", json={"plan": "pro"}), 422, "validation_failed")
    status = client.get(f"/v1/billing/status/{first.json()['checkout_id']}")
    assert "buyer" not in status.text


def test_an_anonymous_checkouts_idempotency_key_expires_with_the_others(client, paddle, platform, clock):
    headers = {"Idempotency-Key": "anon-2"}
    body = {"plan": "pro", "email": "buyer@example.com"}
    first = client.post("/v1/billing/checkout", headers=headers, json=body).json()
    clock.advance(23 * 3600)
    assert run(jobs.run(platform, "purge-idempotency-keys")) == 0
    assert client.post("/v1/billing/checkout", headers=headers, json=body).json() == first  # still replayed
    clock.advance(2 * 3600)
    assert run(jobs.run(platform, "purge-idempotency-keys")) == 1
    fresh = client.post("/v1/billing/checkout", headers=headers, json={**body, "plan": "team"})
    assert fresh.status_code == 201 and fresh.json()["checkout_id"] != first["checkout_id"]
    assert client.get(f"/v1/billing/status/{first['checkout_id']}").json()["plan"] == "pro"  # the checkout stays


def test_checkout_input_is_strict(client, alice):
    for bad in ({"plan": "gold"}, {"plan": "free"}, {"plan": 1}, {"plan": "pro", "extra": 1}, {}):
        response = client.post("/v1/billing/checkout", headers=alice.headers, json=bad)
        assert response.status_code == 422, (bad, response.text)
    assert_problem(client.post("/v1/billing/checkout", headers=alice.headers,
                               json={"plan": "pro", "email": "x@example.com"}), 422, "validation_failed")


def test_a_paddle_refusal_is_a_502_without_secrets_and_releases_the_key(client, alice, paddle):
    paddle.fail_transactions = (400, "transaction_price_not_found", "price pri_x not found")
    headers = {**alice.headers, "Idempotency-Key": "k"}
    response = client.post("/v1/billing/checkout", headers=headers, json={"plan": "pro"})
    body = assert_problem(response, 502, "payment_provider_error")
    assert "transaction_price_not_found" in body["detail"] and API_KEY not in response.text
    assert body["provider"]["status"] == 400
    paddle.fail_transactions = None
    assert client.post("/v1/billing/checkout", headers=headers, json={"plan": "pro"}).status_code == 201


@pytest.mark.parametrize("settings", [Settings(paddle_api_url="http://127.0.0.1:9", paddle_api_key=API_KEY,
                                                paddle_price_pro=PRICE_PRO)])
def test_an_unreachable_paddle_is_a_502(client, alice, settings):
    response = client.post("/v1/billing/checkout", headers=alice.headers, json={"plan": "pro"})
    assert_problem(response, 502, "payment_provider_error")
    assert API_KEY not in response.text


def test_status_of_an_unknown_checkout_is_404(client):
    assert_problem(client.get("/v1/billing/status/chk_doesnotexist"), 404, "not_found")


def test_the_subscription_needs_the_billing_ability_and_is_per_user(client, platform, alice, bob, clock):
    no_billing = make_caller(platform, "carol@example.com", abilities=("projects:read",))
    assert_problem(client.get("/v1/billing/subscription", headers=no_billing.headers), 403, "forbidden")
    assert_problem(client.get("/v1/billing/subscription"), 401, "unauthenticated")
    sub = paddle_id("sub")
    assert deliver(client, clock, paddle_event("subscription.created", subscription_data(
        alice.user_id, sub_id=sub, clock=clock), occurred_at=iso_at(clock))).status_code == 200
    assert plan_of(client, alice)["subscription_id"] == sub
    bob_view = plan_of(client, bob)
    assert bob_view["plan"] == "free" and bob_view["subscriptions"] == [] and sub not in json.dumps(bob_view)


# -- webhook: signatures ----------------------------------------------------------------------------


def test_paddles_published_vector_passes_verification_over_http(client):
    # The vector's body is not JSON: passing verification is what lets it reach the parser.
    response = client.post("/v1/webhooks/paddle", content=b"hello-world", headers={"Paddle-Signature": VECTOR_HEADER})
    assert_problem(response, 400, "invalid_json")
    tampered = client.post("/v1/webhooks/paddle", content=b"hello-world!", headers={"Paddle-Signature": VECTOR_HEADER})
    assert_problem(tampered, 400, "invalid_signature")


def _sample(alice, clock):
    return paddle_event("subscription.created", subscription_data(alice.user_id, sub_id=paddle_id("sub"), clock=clock),
                        occurred_at=iso_at(clock))


@pytest.mark.parametrize("case", ["tampered", "wrong secret", "stale", "future", "missing", "malformed", "only dummy"])
def test_bad_signatures_change_nothing_and_say_nothing(client, alice, clock, platform, case):
    event = _sample(alice, clock)
    body = json.dumps(event).encode()
    now = int(clock.now().timestamp())
    header = {
        "tampered": sign(WEBHOOK_SECRET, now, body),
        "wrong secret": sign("pdl_ntf_someone_else", now, body),
        "stale": sign(WEBHOOK_SECRET, now - 6, body),
        "future": sign(WEBHOOK_SECRET, now + 6, body),
        "missing": "",
        "malformed": "t=1,v1=abc",
        "only dummy": f"ts={now};h1=dummy",
    }[case]
    sent = body.replace(b"active", b"paused") if case == "tampered" else body
    response = client.post("/v1/webhooks/paddle", content=sent,
                           headers={"Paddle-Signature": header} if header else {})
    problem = assert_problem(response, 400, "invalid_signature")
    assert problem["detail"] == "The notification could not be verified."
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM paddle_events") == 0
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM billing_subscriptions") == 0
    assert plan_of(client, alice)["plan"] == "free"


def test_within_the_tolerance_and_with_several_h1_the_delivery_is_accepted(client, alice, clock):
    event = _sample(alice, clock)
    body = json.dumps(event).encode()
    now = int(clock.now().timestamp())
    rotated = f"ts={now - 5};h1={'0' * 64};" + sign(WEBHOOK_SECRET, now - 5, body).split(";")[1]
    response = client.post("/v1/webhooks/paddle", content=body, headers={"Paddle-Signature": rotated})
    assert response.status_code == 200 and response.json()["outcome"] == "applied"
    assert plan_of(client, alice)["plan"] == "pro"


# -- webhook: effects -------------------------------------------------------------------------------


def test_a_checkout_completes_and_the_plan_changes_exactly_once(client, alice, clock, platform, paddle):
    checkout = client.post("/v1/billing/checkout", headers=alice.headers, json={"plan": "pro"}).json()
    transaction = paddle.transactions[checkout["checkout_url"].rsplit("=", 1)[1]]
    sub = paddle_id("sub")
    data = {**transaction, "status": "completed", "subscription_id": sub,
            "billing_period": {"starts_at": iso_at(clock), "ends_at": iso_at(clock, 30 * 86400)}}
    event = paddle_event("transaction.completed", data, occurred_at=iso_at(clock))
    first = deliver(client, clock, event)
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False, "outcome": "applied"}
    again = deliver(client, clock, event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    view = plan_of(client, alice)
    assert view["plan"] == "pro" and view["status"] == "active" and view["subscription_id"] == sub
    assert view["entitlements"]["limits"]["conversations"] is None
    assert client.get(f"/v1/billing/status/{checkout['checkout_id']}").json()["status"] == "completed"
    changes = [e for e in client.get("/v1/audit", headers=alice.headers).json()["events"]
               if e["type"] == "billing.subscription_changed"]
    assert len(changes) == 1 and changes[0]["data"]["plan"] == "pro"
    # The subscription.created that follows keeps it pro, and is one more audited change.
    created = paddle_event("subscription.created", subscription_data(
        None, sub_id=sub, clock=clock, checkout_id=checkout["checkout_id"]), occurred_at=iso_at(clock, 1))
    assert deliver(client, clock, created).json()["outcome"] == "applied"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM billing_subscriptions") == 1


def test_the_same_event_delivered_twice_concurrently_is_applied_once(client, alice, clock, platform):
    event = _sample(alice, clock)
    answers: list = []
    start = threading.Barrier(4)

    def send():
        start.wait()
        answers.append(deliver(client, clock, event))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True]
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM paddle_events") == 1
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM security_events WHERE type = 'billing.subscription_changed'") == 1


def test_the_service_applies_a_racing_duplicate_once(platform, alice, clock):
    import asyncio

    from fastest.services import billing
    from fastest.services.identity.audit import RequestContext

    event = _sample(alice, clock)
    body = json.dumps(event).encode()
    header = sign(WEBHOOK_SECRET, int(clock.now().timestamp()), body)

    async def both():
        return await asyncio.gather(*(billing.receive_webhook(platform, body, header, RequestContext()) for _ in range(2)))

    results = asyncio.run(both())
    assert sorted(r["duplicate"] for r in results) == [False, True]
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM security_events WHERE type = 'billing.subscription_changed'") == 1


def test_updated_before_created_ends_in_the_newest_state(client, alice, clock, platform):
    sub = paddle_id("sub")
    created = paddle_event("subscription.created", subscription_data(alice.user_id, sub_id=sub, clock=clock),
                           occurred_at=iso_at(clock, 0.25))
    updated = paddle_event("subscription.updated", subscription_data(
        alice.user_id, sub_id=sub, clock=clock, price=PRICE_TEAM), occurred_at=iso_at(clock, 2.5))
    assert deliver(client, clock, updated).json()["outcome"] == "applied"
    assert deliver(client, clock, created).json()["outcome"] == "stale"
    assert plan_of(client, alice)["plan"] == "team"
    # A cancellation, then a late, older past_due: still canceled (the free plan).
    canceled = paddle_event("subscription.canceled", subscription_data(
        alice.user_id, sub_id=sub, clock=clock, status="canceled", price=PRICE_TEAM), occurred_at=iso_at(clock, 4))
    late = paddle_event("subscription.past_due", subscription_data(
        alice.user_id, sub_id=sub, clock=clock, status="past_due", price=PRICE_TEAM), occurred_at=iso_at(clock, 3))
    assert deliver(client, clock, canceled).json()["outcome"] == "applied"
    assert deliver(client, clock, late).json()["outcome"] == "stale"
    view = plan_of(client, alice)
    assert view["plan"] == "free" and view["subscriptions"][0]["status"] == "canceled"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM paddle_events WHERE outcome = 'stale'") == 2


@pytest.mark.parametrize("event_type, status, entitled", [
    ("subscription.past_due", "past_due", True), ("subscription.paused", "paused", False),
    ("subscription.resumed", "active", True), ("subscription.canceled", "canceled", False),
])
def test_each_subscription_event_sets_the_status(client, alice, clock, event_type, status, entitled):
    sub = paddle_id("sub")
    deliver(client, clock, paddle_event("subscription.created", subscription_data(alice.user_id, sub_id=sub, clock=clock),
                                        occurred_at=iso_at(clock)))
    data = subscription_data(alice.user_id, sub_id=sub, clock=clock, status=status)
    assert deliver(client, clock, paddle_event(event_type, data, occurred_at=iso_at(clock, 1))).status_code == 200
    view = plan_of(client, alice)
    assert view["subscriptions"][0]["status"] == status
    assert view["plan"] == ("pro" if entitled else "free")


def test_unknown_event_types_are_recorded_and_acknowledged(client, clock, platform):
    event = paddle_event("address.created", {"id": "add_01"}, occurred_at=iso_at(clock))
    response = deliver(client, clock, event)
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM paddle_events WHERE event_type = 'address.created'") == 1


def test_an_event_for_an_unknown_price_or_user_is_acknowledged_and_changes_nothing(client, alice, clock, platform):
    unknown_price = subscription_data(alice.user_id, sub_id=paddle_id("sub"), clock=clock, price="pri_unknown")
    assert deliver(client, clock, paddle_event("subscription.created", unknown_price, occurred_at=iso_at(clock))).json()[
        "outcome"] == "unmatched"
    nobody = subscription_data("usr_nobody", sub_id=paddle_id("sub"), clock=clock)
    assert deliver(client, clock, paddle_event("subscription.created", nobody, occurred_at=iso_at(clock))).json()[
        "outcome"] == "unmatched"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM billing_subscriptions") == 0


def test_malformed_signed_events_are_400(client, clock):
    assert_problem(deliver(client, clock, b"[1, 2]"), 422, "validation_failed")
    assert_problem(deliver(client, clock, {"event_id": "evt_1", "event_type": "x", "occurred_at": "yesterday", "data": {}}),
                   422, "validation_failed")


def test_an_anonymous_purchase_lands_on_the_buyers_account(client, clock, paddle, platform):
    checkout = client.post("/v1/billing/checkout", json={"plan": "team", "email": "newbuyer@example.com"}).json()
    sub = paddle_id("sub")
    data = subscription_data(None, sub_id=sub, clock=clock, price=PRICE_TEAM, checkout_id=checkout["checkout_id"])
    assert deliver(client, clock, paddle_event("subscription.created", data, occurred_at=iso_at(clock))).json()[
        "outcome"] == "applied"
    buyer = make_caller(platform, "newbuyer@example.com")  # signs in later with the same email
    assert plan_of(client, buyer)["plan"] == "team"
    assert client.get(f"/v1/billing/status/{checkout['checkout_id']}").json()["status"] == "completed"


def test_an_unmatched_event_applies_when_redelivered_after_the_configuration_is_fixed(client, alice, clock, platform):
    import dataclasses

    data = subscription_data(alice.user_id, sub_id=paddle_id("sub"), clock=clock, price="pri_01hnewprice000000000000000")
    event = paddle_event("subscription.created", data, occurred_at=iso_at(clock))
    assert deliver(client, clock, event).json()["outcome"] == "unmatched"
    platform.settings = dataclasses.replace(platform.settings, paddle_price_team="pri_01hnewprice000000000000000")
    assert deliver(client, clock, event).json() == {"received": True, "duplicate": False, "outcome": "applied"}
    assert deliver(client, clock, event).json()["duplicate"] is True
    assert plan_of(client, alice)["plan"] == "team"


def test_a_subscribed_user_cannot_start_a_second_subscription(client, alice, clock):
    deliver(client, clock, _sample(alice, clock))
    body = assert_problem(client.post("/v1/billing/checkout", headers=alice.headers, json={"plan": "team"}), 409,
                          "already_subscribed")
    assert body["plan"] == "pro"


def test_a_signed_notification_nested_too_deep_is_400_and_changes_nothing(client, clock, platform):
    assert_problem(deliver(client, clock, b"[" * 200_000), 400, "invalid_json")
    assert_problem(deliver(client, clock, b'{"event_id": ' + b"[" * 200_000), 400, "invalid_json")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM paddle_events") == 0
