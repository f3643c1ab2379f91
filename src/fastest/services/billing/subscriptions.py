"""Billing with Paddle: plans, checkout, the signed Paddle webhook.

- `checkout`: a Paddle transaction for a plan's price, tied to the user (signed in) or to a checkout
  row carrying the buyer's email (anonymous); the answer is Paddle's hosted checkout URL.
- `receive_webhook`: a Paddle notification, verified on its raw bytes before anything is parsed,
  applied at most once per `event_id`, never moving a subscription's state back in time.
- `reconcile_subscriptions`: the daily job for subscriptions whose period ended without an event.

Exactly-once: the event's row (`paddle_events`, primary key `event_id`) is inserted with a random
`claim` by `INSERT … ON CONFLICT DO NOTHING` (only a row left `unmatched` may be taken over by a
later delivery, with a new claim), and every effect in the same `db.batch` (one
transaction) is conditional on `paddle_events` holding THIS claim. Two deliveries of one event racing
each other both run their batch; only the one whose insert won sees its own claim, so the effect is
applied once whatever the interleaving. Out of order: a subscription row keeps the `occurred_at` of
the event that set it (`state_at`), and an upsert only overwrites a row whose `state_at` is older.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from fastest.domain import paddle_signature
from fastest.domain.ids import iso
from fastest.domain.plans import Plan
from fastest.domain.untrusted_text import Unparseable, parse_json
from fastest.errors import (
    ApiError,
    Conflict,
    InvalidJson,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from fastest.platform import Platform
from fastest.ports import Statement
from fastest.services import identity
from fastest.services.billing import entitlements, paddle
from fastest.services.common import new_id, now_iso
from fastest.services.identity import audit
from fastest.services.identity.audit import RequestContext
from fastest.services.safeguards import idempotency

log = logging.getLogger("fastest.billing")

# Paddle's subscription statuses, and what each `subscription.*` event implies when `data.status`
# is absent. `expired` is ours: a period ended with no word from Paddle and no Paddle to ask.
PADDLE_STATUSES = ("active", "trialing", "past_due", "paused", "canceled")
SUBSCRIPTION_STATUSES = (*PADDLE_STATUSES, "expired")
_IMPLIED_STATUS = {
    "subscription.created": "active", "subscription.activated": "active", "subscription.resumed": "active",
    "subscription.trialing": "trialing", "subscription.past_due": "past_due", "subscription.paused": "paused",
    "subscription.canceled": "canceled",
}
HANDLED_EVENTS = frozenset({
    "transaction.completed", "subscription.created", "subscription.updated", "subscription.canceled",
    "subscription.past_due", "subscription.paused", "subscription.resumed", "subscription.activated",
    "subscription.trialing", "subscription.imported",
})
MAX_WEBHOOK_BYTES = 1024 * 1024
# A subscription whose period ended this long ago without an event is reconciled.
RECONCILE_GRACE = timedelta(hours=24)
RECONCILE_BATCH = 100


class InvalidSignature(ApiError):
    """The same answer for every verification failure: the caller learns nothing about why."""

    status, code, title = 400, "invalid_signature", "Invalid signature"


def state_time(value: Any) -> str | None:
    """An RFC 3339 time as a fixed-width UTC string with microseconds (so text order is time
    order: Paddle's fractions vary in length), or None if it is not one."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------------------------------
# Plans, checkout, status, subscription
# --------------------------------------------------------------------------------------------------


def plans_view(platform: Platform) -> dict[str, Any]:
    return {
        "plans": [p.view() for p in entitlements.plans(platform).plans],
        "paddle_configured": paddle.configured(platform),
    }


def _purchasable(platform: Platform, plan_name: str) -> Plan:
    plan = entitlements.plans(platform).get(plan_name)
    if plan is None:
        raise ValidationFailed(f"There is no plan named {plan_name!r}.", code="unknown_plan", fields={"plan": "unknown plan"})
    if plan.price_id is None:
        raise ValidationFailed(
            f"The {plan.name} plan cannot be bought" + (" (it is free)." if plan.name == "free" else " on this server."),
            code="plan_not_purchasable", fields={"plan": "not purchasable"},
        )
    if not paddle.configured(platform):
        raise Unavailable("Paid plans are not available: Paddle is not configured on this server.",
                          code="billing_not_configured")
    return plan


def _checkout_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"checkout_id": row["id"], "checkout_url": row["checkout_url"], "plan": row["plan"], "status": row["status"]}


async def _open_transaction(
    platform: Platform, checkout_id: str, plan: Plan, email: str, user_id: str | None, context: RequestContext
) -> dict[str, Any]:
    """Create the Paddle customer and transaction for a checkout row in state `creating`, then mark
    it `open` (or `failed`, re-raising, when Paddle refuses)."""
    custom_data = {"checkout_id": checkout_id, "plan": plan.name}
    if user_id is not None:
        custom_data["user_id"] = user_id
    db = platform.db
    try:
        customer_id = await paddle.customer_for_email(platform, email)
        assert plan.price_id is not None
        transaction_id, url = await paddle.create_transaction(
            platform, price_id=plan.price_id, customer_id=customer_id, custom_data=custom_data
        )
    except BaseException:
        # Released: the key (anonymous scope) is freed so a retry runs again.
        await db.prepare(
            "UPDATE billing_checkouts SET status = 'failed', idempotency_key = NULL, updated_at = ? WHERE id = ?"
        ).bind(now_iso(platform), checkout_id).run()
        raise
    statements: list[Statement] = [
        db.prepare(
            "UPDATE billing_checkouts SET status = 'open', transaction_id = ?, checkout_url = ?, updated_at = ? "
            "WHERE id = ? AND status = 'creating'"
        ).bind(transaction_id, url, now_iso(platform), checkout_id)
    ]
    if user_id is not None:
        statements.append(audit.record(
            platform, user_id, "billing.checkout_created", f"Checkout for the {plan.name} plan opened",
            context, {"checkout_id": checkout_id, "plan": plan.name, "transaction_id": transaction_id},
            if_changed=True,
        ))
    await db.batch(statements)
    return {"checkout_id": checkout_id, "checkout_url": url, "plan": plan.name, "status": "open"}


async def checkout_for_user(platform: Platform, user_id: str, plan_name: str, context: RequestContext) -> dict[str, Any]:
    """A checkout for the signed-in user (Idempotency-Key is handled around this by the route)."""
    plan = _purchasable(platform, plan_name)
    user = await platform.db.prepare("SELECT email FROM users WHERE id = ?").bind(user_id).first()
    if user is None:
        raise NotFound("User not found.")
    current = await entitlements.current_plan(platform, user_id)
    if current.name != entitlements.plans(platform).free.name:
        # A second checkout would start a second subscription, billed on top of the first.
        raise Conflict(
            f"You already have the {current.name} plan; change or cancel it from Paddle's customer portal "
            "(the link is in Paddle's receipts).",
            code="already_subscribed", extra={"plan": current.name},
        )
    checkout_id = new_id(platform, "chk")
    now = now_iso(platform)
    await platform.db.prepare(
        "INSERT INTO billing_checkouts (id, user_id, plan, status, created_at, updated_at) VALUES (?, ?, ?, 'creating', ?, ?)"
    ).bind(checkout_id, user_id, plan.name, now, now).run()
    return await _open_transaction(platform, checkout_id, plan, user["email"], user_id, context)


def _anonymous_scope(email: str, key: str) -> str:
    return hashlib.sha256(f"{email.lower()}\x00{key}".encode("utf-8")).hexdigest()


async def checkout_anonymous(
    platform: Platform, plan_name: str, email: str, context: RequestContext,
    *, idempotency_key: str | None, fingerprint: str,
) -> tuple[dict[str, Any], bool]:
    """A checkout for someone not signed in, billed to `email`: (answer, replayed). With an
    Idempotency-Key, the checkout row itself is the claim: the same key, email and body replay the
    first answer; a different body is a 422; one still being created is a 409."""
    email = identity.checked_email(email)
    plan = _purchasable(platform, plan_name)
    scope = None
    if idempotency_key is not None:
        idempotency.validate_key(idempotency_key)
        scope = _anonymous_scope(email, idempotency_key)
    checkout_id = new_id(platform, "chk")
    now = now_iso(platform)
    claimed = await platform.db.prepare(
        "INSERT INTO billing_checkouts (id, email, plan, status, idempotency_key, fingerprint, created_at, updated_at) "
        "VALUES (?, ?, ?, 'creating', ?, ?, ?, ?) ON CONFLICT(idempotency_key) DO NOTHING"
    ).bind(checkout_id, email, plan.name, scope, fingerprint, now, now).run()
    if claimed.changes == 0:
        row = await platform.db.prepare("SELECT * FROM billing_checkouts WHERE idempotency_key = ?").bind(scope).first()
        if row is None:
            raise Conflict("This Idempotency-Key is being processed; retry shortly.", code="idempotency_in_flight")
        if row["fingerprint"] != fingerprint:
            raise ValidationFailed(
                "This Idempotency-Key was used with a different request.", code="idempotency_key_reused",
                fields={"header.Idempotency-Key": "already used with a different request"},
            )
        if row["status"] == "creating":
            raise Conflict("A request with this Idempotency-Key is still in progress.", code="idempotency_in_flight")
        return {"checkout_id": row["id"], "checkout_url": row["checkout_url"], "plan": row["plan"], "status": "open"}, True
    return await _open_transaction(platform, checkout_id, plan, email, None, context), False


async def forget_expired_idempotency_keys(platform: Platform) -> int:
    """Cron (with the other Idempotency-Key records): anonymous checkouts stop answering for their
    key once it is past its lifetime, so the key may be used again; the checkouts themselves stay."""
    cutoff = platform.clock.now() - timedelta(hours=platform.settings.idempotency_ttl_hours)
    result = await platform.db.prepare(
        "UPDATE billing_checkouts SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL AND created_at <= ?"
    ).bind(iso(cutoff)).run()
    return result.changes


async def checkout_status(platform: Platform, checkout_id: str) -> dict[str, Any]:
    """Public: `{checkout_id, status, plan}` and nothing personal."""
    row = await platform.db.prepare("SELECT id, status, plan FROM billing_checkouts WHERE id = ?").bind(
        checkout_id
    ).first()
    if row is None:
        raise NotFound("Checkout not found.")
    return {"checkout_id": row["id"], "status": row["status"], "plan": row["plan"]}


async def subscription_view(platform: Platform, user_id: str) -> dict[str, Any]:
    """The user's plan, its status and period, their subscriptions, limits and usage."""
    rows = (await platform.db.prepare(
        "SELECT id, plan, status, current_period_end, updated_at FROM billing_subscriptions WHERE user_id = ? "
        "ORDER BY updated_at DESC, id LIMIT 20"
    ).bind(user_id).all()).results
    summary = await entitlements.summary(platform, user_id)
    known = entitlements.plans(platform)
    plan = known.get(summary["plan"]) or known.free
    current = [r for r in rows if r["plan"] == plan.name and r["status"] in entitlements.ENTITLING_STATUSES]
    current.sort(key=lambda r: r["current_period_end"] or "9999", reverse=True)
    main = current[0] if current else None
    return {
        "plan": plan.name,
        "status": main["status"] if main else ("free" if plan.name == "free" else "active"),
        "current_period_end": main["current_period_end"] if main else None,
        "subscription_id": main["id"] if main else None,
        "entitlements": {"limits": summary["limits"], "usage": summary["usage"]},
        "subscriptions": [
            {"id": r["id"], "plan": r["plan"], "status": r["status"], "current_period_end": r["current_period_end"]}
            for r in rows
        ],
    }


# --------------------------------------------------------------------------------------------------
# The webhook
# --------------------------------------------------------------------------------------------------


def verify_signature(platform: Platform, raw: bytes, header: str | None) -> None:
    """Raise the one 400 `invalid_signature` unless `raw` carries a valid, fresh Paddle signature."""
    settings = platform.settings
    check = paddle_signature.verify(
        header, raw, paddle_signature.secrets_from_setting(settings.paddle_webhook_secrets),
        now=platform.clock.now().timestamp(), tolerance=settings.paddle_webhook_tolerance_seconds,
    )
    if not check.ok:
        log.warning("Paddle webhook refused: %s", check.reason)
        raise InvalidSignature("The notification could not be verified.")


def _parse_event(raw: bytes) -> dict[str, Any]:
    try:
        event = parse_json(raw)
    except Unparseable:
        raise InvalidJson("The notification is not JSON.") from None
    if not isinstance(event, dict):
        raise ValidationFailed("The notification is not a JSON object.")
    problems = {}
    for name in ("event_id", "event_type", "occurred_at"):
        if not isinstance(event.get(name), str) or not event[name] or len(event[name]) > 200:
            problems[name] = "required string"
    if "occurred_at" not in problems and state_time(event["occurred_at"]) is None:
        problems["occurred_at"] = "not an RFC 3339 time"
    if not isinstance(event.get("data"), dict):
        problems["data"] = "required object"
    if problems:
        raise ValidationFailed("The notification is not a Paddle event.", fields=problems)
    return event


def _price_ids(data: Mapping[str, Any]) -> list[str]:
    found = []
    for item in data.get("items") or []:
        if not isinstance(item, dict):
            continue
        price = item.get("price")
        price_id = price.get("id") if isinstance(price, dict) else item.get("price_id")
        if isinstance(price_id, str):
            found.append(price_id)
    return found


def _period_end(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        period = data.get(key)
        if isinstance(period, dict) and state_time(period.get("ends_at")):
            return state_time(period.get("ends_at"))
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


async def _user_exists(platform: Platform, user_id: str | None) -> bool:
    if not user_id:
        return False
    return await platform.db.prepare("SELECT 1 AS one FROM users WHERE id = ?").bind(user_id).first() is not None


async def _resolve_user(platform: Platform, key: str, custom: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(user id, checkout id): the subscription's owner if we know it, else the checkout we created
    (its user, or the anonymous buyer's account, made from their email), else `custom_data.user_id`."""
    known = await platform.db.prepare("SELECT user_id FROM billing_subscriptions WHERE id = ?").bind(key).first()
    checkout_id = _text(custom.get("checkout_id"))
    if known is not None:
        return known["user_id"], checkout_id
    if checkout_id:
        checkout = await platform.db.prepare("SELECT user_id, email FROM billing_checkouts WHERE id = ?").bind(
            checkout_id
        ).first()
        if checkout is not None:
            if checkout["user_id"]:
                return checkout["user_id"], checkout_id
            if checkout["email"]:
                return (await identity.ensure_user(platform, checkout["email"]))["id"], checkout_id
    user_id = _text(custom.get("user_id"))
    return (user_id if await _user_exists(platform, user_id) else None), checkout_id


def _event_insert(platform: Platform, event: Mapping[str, Any], claim: str, occurred: str, *,
                  user_id: str | None, subscription_id: str | None, outcome: str) -> Statement:
    return platform.db.prepare(
        "INSERT INTO paddle_events (event_id, event_type, occurred_at, notification_id, claim, user_id, "
        "subscription_id, outcome, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        # An event left unmatched (unknown price or user) is taken over by a later delivery of it, so a
        # replay from Paddle after fixing the configuration applies it; anything else is final.
        "ON CONFLICT(event_id) DO UPDATE SET claim = excluded.claim, user_id = excluded.user_id, "
        "subscription_id = excluded.subscription_id, outcome = excluded.outcome, received_at = excluded.received_at "
        "WHERE paddle_events.outcome = 'unmatched'"
    ).bind(event["event_id"], event["event_type"], occurred, _text(event.get("notification_id")), claim, user_id,
           subscription_id, outcome, now_iso(platform))


def apply_statements(
    platform: Platform, *, claim_event: str, claim: str, user_id: str, key: str, plan: str, status: str,
    price_id: str | None, customer_id: str | None, period_end: str | None, state_at: str, checkout_id: str | None,
    source: str, context: RequestContext,
) -> list[Statement]:
    """The effect of one claimed event (or reconciliation) on one subscription row, each statement
    conditional on `paddle_events` holding `claim` for `claim_event`: the upsert (newer state only),
    its audit entry (only if the upsert changed the row), the event's outcome when it was older than
    the row, and the checkout it completes."""
    db = platform.db
    claimed = "EXISTS (SELECT 1 FROM paddle_events WHERE event_id = ? AND claim = ?)"
    now = now_iso(platform)
    statements = [
        db.prepare(
            "INSERT INTO billing_subscriptions (id, user_id, plan, status, price_id, customer_id, current_period_end, "
            f"state_at, created_at, updated_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE {claimed} "
            "ON CONFLICT(id) DO UPDATE SET plan = excluded.plan, status = excluded.status, "
            "price_id = COALESCE(excluded.price_id, billing_subscriptions.price_id), "
            "customer_id = COALESCE(excluded.customer_id, billing_subscriptions.customer_id), "
            "current_period_end = COALESCE(excluded.current_period_end, billing_subscriptions.current_period_end), "
            "state_at = excluded.state_at, updated_at = excluded.updated_at "
            "WHERE excluded.state_at > billing_subscriptions.state_at OR (excluded.state_at = billing_subscriptions.state_at "
            "AND billing_subscriptions.status = 'expired' AND excluded.status <> 'expired')"
        ).bind(key, user_id, plan, status, price_id, customer_id, period_end, state_at, now, now, claim_event, claim),
        audit.record(
            platform, user_id, "billing.subscription_changed", f"Subscription {key}: {plan} plan, {status} ({source})",
            context, {"subscription_id": key, "plan": plan, "status": status, "source": source,
                      "current_period_end": period_end},
            if_changed=True,
        ),
        db.prepare(
            "UPDATE paddle_events SET outcome = 'stale' WHERE event_id = ? AND claim = ? AND outcome = 'applied' "
            "AND changes() = 0"
        ).bind(claim_event, claim),
    ]
    if checkout_id:
        statements.append(db.prepare(
            "UPDATE billing_checkouts SET status = 'completed', subscription_id = COALESCE(subscription_id, ?), "
            f"updated_at = ? WHERE id = ? AND status <> 'completed' AND {claimed}"
        ).bind(key if key.startswith("sub_") else None, now, checkout_id, claim_event, claim))
    return statements


async def receive_webhook(platform: Platform, raw: bytes, signature: str | None, context: RequestContext) -> dict[str, Any]:
    """Verify, then record and apply a Paddle notification once. `{received, duplicate, outcome}`."""
    verify_signature(platform, raw, signature)
    event = _parse_event(raw)
    event_type: str = event["event_type"]
    occurred = state_time(event["occurred_at"])
    assert occurred is not None
    data: Mapping[str, Any] = event["data"]
    claim = secrets.token_hex(16)
    db = platform.db

    if event_type not in HANDLED_EVENTS:
        result = await db.batch([_event_insert(platform, event, claim, occurred, user_id=None, subscription_id=None,
                                               outcome="ignored")])
        return {"received": True, "duplicate": result[0].changes == 0, "outcome": "ignored"}

    custom = data.get("custom_data") if isinstance(data.get("custom_data"), dict) else {}
    if event_type == "transaction.completed":
        key = _text(data.get("subscription_id")) or _text(data.get("id"))
        status = "active"
        period_end = _period_end(data, "billing_period")
    else:
        key = _text(data.get("id"))
        status = data.get("status") if data.get("status") in PADDLE_STATUSES else _IMPLIED_STATUS.get(event_type)
        period_end = _period_end(data, "current_billing_period")
    known = entitlements.plans(platform)
    prices = _price_ids(data)
    matched = [p for p in (known.by_price(pid) for pid in prices) if p is not None]
    plan = max(matched, key=lambda p: p.rank) if matched else None
    user_id, checkout_id = (None, None)
    if key:
        user_id, checkout_id = await _resolve_user(platform, key, custom)
    if not key or not status or plan is None or user_id is None:
        reason = ("no subscription or transaction id" if not key else "no status" if not status
                  else "no price of a known plan" if plan is None else "no user")
        log.warning("Paddle event %s (%s) not applied: %s", event["event_id"], event_type, reason)
        result = await db.batch([_event_insert(platform, event, claim, occurred, user_id=user_id,
                                               subscription_id=key, outcome="unmatched")])
        return {"received": True, "duplicate": result[0].changes == 0, "outcome": "unmatched"}

    price_id = next((pid for pid in prices if known.by_price(pid) is plan), None)
    statements = [
        _event_insert(platform, event, claim, occurred, user_id=user_id, subscription_id=key, outcome="applied"),
        *apply_statements(
            platform, claim_event=event["event_id"], claim=claim, user_id=user_id, key=key, plan=plan.name,
            status=status, price_id=price_id, customer_id=_text(data.get("customer_id")), period_end=period_end,
            state_at=occurred, checkout_id=checkout_id, source=f"Paddle {event_type} {event['event_id']}",
            context=context,
        ),
    ]
    results = await db.batch(statements)
    duplicate = results[0].changes == 0
    outcome = "duplicate" if duplicate else ("applied" if results[1].changes else "stale")
    return {"received": True, "duplicate": duplicate, "outcome": outcome}


# --------------------------------------------------------------------------------------------------
# Reconciliation (daily job)
# --------------------------------------------------------------------------------------------------


def _after(previous: str, candidate: str) -> str:
    """`candidate`, or one microsecond after `previous` if it is not later (a state time must move
    forward for the guarded upsert to take it)."""
    if candidate > previous:
        return candidate
    moment = datetime.strptime(previous, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (moment + timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def reconcile_subscriptions(platform: Platform) -> int:
    """Subscriptions still entitling whose period ended more than a day ago without an event: ask
    Paddle for each one's state when Paddle is configured, else mark it `expired` (a lapsed
    subscription no longer entitles). Each change goes through the same claimed, time-guarded batch
    as a webhook (the claim keyed on the subscription and its period), so two runs at once change
    each subscription once. Returns how many subscriptions changed."""
    db = platform.db
    now = platform.clock.now()
    cutoff = iso(now - RECONCILE_GRACE)
    rows = (await db.prepare(
        "SELECT id, user_id, plan, status, price_id, customer_id, current_period_end, state_at FROM billing_subscriptions "
        "WHERE status IN ('active', 'trialing', 'past_due') AND current_period_end IS NOT NULL "
        "AND current_period_end < ? ORDER BY current_period_end LIMIT ?"
    ).bind(cutoff, RECONCILE_BATCH).all()).results
    changed = 0
    known = entitlements.plans(platform)
    for row in rows:
        key = row["id"]
        status, plan_name, period_end, price_id = "expired", row["plan"], row["current_period_end"], row["price_id"]
        # Without Paddle, the lapse is dated at the period's end: an event from after it (a renewal
        # Paddle delivers late) still wins over this guess.
        state_at = _after(row["state_at"], state_time(period_end) or row["state_at"])
        if paddle.configured(platform) and key.startswith("sub_"):
            try:
                data = await paddle.get_subscription(platform, key)
            except ApiError:
                log.warning("reconcile: Paddle could not tell the state of %s; left as is", key)
                continue
            fetched = data.get("status")
            if fetched not in PADDLE_STATUSES:
                continue
            status = fetched
            state_at = _after(row["state_at"], state_time(data.get("updated_at")) or state_time(now.isoformat()) or "")
            period_end = _period_end(data, "current_billing_period") or period_end
            matched = [p for p in (known.by_price(pid) for pid in _price_ids(data)) if p is not None]
            if matched:
                best = max(matched, key=lambda p: p.rank)
                plan_name, price_id = best.name, next(
                    (pid for pid in _price_ids(data) if known.by_price(pid) is best), price_id)
            if status == row["status"] and period_end == row["current_period_end"] and plan_name == row["plan"]:
                continue  # nothing new from Paddle (the next run asks again)
        # One claim per (subscription, period, outcome): a concurrent run inserts the same event id
        # and finds it taken, so the change lands once.
        event_id = "reconcile:" + hashlib.sha256(f"{key}|{row['current_period_end']}|{status}|{period_end}".encode()).hexdigest()[:32]
        claim = secrets.token_hex(16)
        statements = [
            db.prepare(
                "INSERT INTO paddle_events (event_id, event_type, occurred_at, notification_id, claim, user_id, "
                "subscription_id, outcome, received_at) VALUES (?, 'reconcile.subscription', ?, NULL, ?, ?, ?, "
                "'applied', ?) ON CONFLICT(event_id) DO NOTHING"
            ).bind(event_id, state_at, claim, row["user_id"], key, now_iso(platform)),
            *apply_statements(
                platform, claim_event=event_id, claim=claim, user_id=row["user_id"], key=key, plan=plan_name,
                status=status, price_id=price_id, customer_id=row["customer_id"], period_end=period_end,
                state_at=state_at, checkout_id=None,
                source="reconciliation with Paddle" if paddle.configured(platform) else "period ended without an event",
                context=RequestContext(),
            ),
        ]
        results = await db.batch(statements)
        changed += 1 if results[1].changes else 0
    return changed
