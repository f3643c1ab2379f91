"""Integration webhooks: the delivery of their messages as Standard Webhooks.

The life of a message (one per event and endpoint, queued with its event by `webhook_outbox`):

- **first attempt** soon after the event commits (`deliver_event`, run in the background);
- **retries** on the Standard Webhooks schedule with jitter (`domain.webhook_targets`), by the
  `retry-webhook-deliveries` cron job (`sweep`), or in the background when the next try is seconds away;
- a sender **claims** a due message (lease token + expiry, one UPDATE) before sending it, so two
  concurrent senders (the background task and the cron, or two crons) never send it twice at once;
  a sender that dies leaves its lease to expire and the message is sent again with the same
  `webhook-id` (receivers deduplicate on it);
- only 2xx succeeds; 429/503 `Retry-After` is honoured; 410 Gone disables the endpoint at once; an
  endpoint whose attempts have failed for three days is disabled with a reason the user sees;
- each endpoint's `rate_limit_per_minute` and `failure_backoff_seconds` hold back its own messages
  only; every endpoint is sent to by its own tasks, with its own concurrency bound, so a slow or
  failing endpoint never delays another's deliveries.

Safety: the URL is checked again at every send (`endpoints.check_target`) and the connection goes
to the checked address (`pin`); redirects are not followed; 15 s timeout; at most `EXCERPT_BYTES`
of the answer are kept. The secret is opened only to sign, and never logged. What the senders of one
platform share (per-endpoint slots, batched writes) is `senders`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import secrets as secrets_module
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from fastest.domain import standard_webhooks
from fastest.domain.ids import iso
from fastest.domain.webhook_targets import DISABLE_AFTER_SECONDS, MAX_ATTEMPTS, TargetRefused, retry_delay
from fastest.errors import Conflict, NotFound
from fastest.platform import Platform
from fastest.ports import Statement
from fastest.services.common import dumps, new_id, now_iso
from fastest.services.events import Event
from fastest.services.webhooks import outbox as webhook_outbox
from fastest.services.webhooks.endpoints import SECRET_PURPOSE, check_target, delivery_view, get_owned
from fastest.services.webhooks.senders import senders

log = logging.getLogger("fastest.webhooks")

SEND_TIMEOUT_SECONDS = 15.0
EXCERPT_BYTES = 1024  # kept in the deliveries log
READ_LIMIT_BYTES = 64 * 1024  # read at most this much of an answer, then hang up
LEASE_SECONDS = 60  # > the timeout: a claim outlives its own attempt
CLAIM_PER_ENDPOINT = 8  # the sweep's look-ahead per endpoint
SWEEP_ENDPOINTS_AT_ONCE = 50
SWEEP_BUDGET_SECONDS = 50.0  # the cron fires every minute; the next run picks up what is left
SHORT_RETRY_SECONDS = 30  # a retry due this soon is done by the background task itself
MAX_RETRY_AFTER_SECONDS = 24 * 3600
COMMIT_WAITS = (0.0, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)  # how long a first attempt waits for its event
TEST_EVENT = "webhook.test"


# --------------------------------------------------------------------------------------------------
# Manual sends: test and redeliver
# --------------------------------------------------------------------------------------------------


async def send_test(platform: Platform, user_id: str, endpoint_id: str) -> dict[str, Any]:
    """Send a `webhook.test` message now (whatever the endpoint subscribed to, enabled or not) and
    answer with its logged attempt. A test is never retried."""
    endpoint = await get_owned(platform, user_id, endpoint_id)
    now = now_iso(platform)
    event_id = new_id(platform, "tst")
    message_id = f"msg_{event_id}_{endpoint_id}"
    body = dumps({"type": TEST_EVENT, "timestamp": now,
                  "data": {"event_id": event_id, "endpoint_id": endpoint_id, "summary": "A test delivery from Fastest."}})
    lease = _lease_token()
    await platform.db.prepare(
        "INSERT INTO webhook_messages (id, endpoint_id, event_id, event_type, payload, status, attempts, next_attempt_at, "
        "lease_token, lease_until, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, NULL, ?, ?, ?, ?)"
    ).bind(message_id, endpoint_id, event_id, TEST_EVENT, body, lease, _in(platform, LEASE_SECONDS), now, now).run()
    message = await platform.db.prepare("SELECT * FROM webhook_messages WHERE id = ?").bind(message_id).first()
    return await _attempt(platform, message, endpoint, trigger="test", lease=lease)  # type: ignore[return-value]


async def redeliver(platform: Platform, user_id: str, delivery_id: str) -> dict[str, Any]:
    """Send the message of a logged attempt again now, with the same `webhook-id`, and answer with
    the new attempt. 409 while another sender holds the message."""
    row = await platform.db.prepare(
        "SELECT d.message_id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
        "WHERE d.id = ? AND e.user_id = ?"
    ).bind(delivery_id, user_id).first()
    if row is None:
        raise NotFound("Delivery not found.")
    lease = _lease_token()
    now = now_iso(platform)
    claimed = await platform.db.prepare(
        "UPDATE webhook_messages SET lease_token = ?, lease_until = ? WHERE id = ? "
        "AND (lease_until IS NULL OR lease_until <= ?)"
    ).bind(lease, _in(platform, LEASE_SECONDS), row["message_id"], now).run()
    if claimed.changes != 1:
        raise Conflict("This message is being sent right now; try again in a minute.", code="delivery_in_progress")
    message = await platform.db.prepare("SELECT * FROM webhook_messages WHERE id = ?").bind(row["message_id"]).first()
    endpoint = await platform.db.prepare("SELECT * FROM webhook_endpoints WHERE id = ?").bind(message["endpoint_id"]).first()
    return await _attempt(platform, message, endpoint, trigger="redeliver", lease=lease)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# Automatic sends: the first attempt after an event, and the retry sweep
# --------------------------------------------------------------------------------------------------


def queue_messages(platform: Platform, event: Event) -> list[Statement]:
    """The webhooks' reaction to a recorded project event: one pending message per subscribed
    endpoint, written in the event's own batch, and the first attempts asked for soon after."""
    webhook_event = webhook_outbox.webhook_type(event.type)
    if webhook_event is None:
        return []
    body = webhook_outbox.payload(webhook_event, event.created_at, event.project_id, event.id, event.actor,
                                  event.summary, event.data)
    statement = webhook_outbox.fan_out(platform, project_id=event.project_id, event_id=event.id,
                                       webhook_event=webhook_event, body=body, now=event.created_at)
    platform.defer(deliver_event(platform, event.id))
    return [statement]


async def deliver_event(platform: Platform, event_id: str) -> int:
    """The first attempts of one event's messages, once the event has committed (the caller's batch
    may still be on its way: wait for it a little, then leave the rest to the cron). Returns how
    many attempts were made."""
    for wait in COMMIT_WAITS:
        if wait:
            await asyncio.sleep(wait)
        committed = await platform.db.prepare("SELECT COUNT(*) AS n FROM project_events WHERE id = ?").bind(event_id).first("n")
        if committed:
            break
    else:
        return 0
    made = 0
    for _ in range(2):  # the first attempts, then (at most once) a retry due within seconds
        rows = (
            await platform.db.prepare(
                "SELECT m.id AS message_id, e.* FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id "
                "WHERE m.event_id = ? AND m.status = 'pending'"
            ).bind(event_id).all()
        ).results
        endpoints: dict[str, Any] = {r["id"]: r for r in rows}
        attempts = [a for a in await asyncio.gather(
            *(_send_one(platform, r["message_id"], r["id"], endpoints) for r in rows)
        ) if a is not None]
        made += len(attempts)
        soon = [a["next_retry_at"] for a in attempts if a["next_retry_at"] is not None]
        if not soon:
            break
        wait = (_parse(min(soon)) - platform.clock.now()).total_seconds()
        if wait > SHORT_RETRY_SECONDS:
            break
        await asyncio.sleep(max(0.0, wait))
    return made


async def sweep(platform: Platform, *, budget_seconds: float = SWEEP_BUDGET_SECONDS) -> int:
    """The retry job: every due message, each endpoint by its own task (a slow endpoint only holds
    up itself), until nothing is due or the time budget is spent. Safe to run twice at once: each
    message is claimed before it is sent. Returns how many attempts were made."""
    deadline = time.monotonic() + budget_seconds
    rows = (
        await platform.db.prepare(
            "SELECT DISTINCT m.endpoint_id FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id "
            "WHERE m.status = 'pending' AND m.next_attempt_at <= ? AND e.enabled = 1"
        ).bind(now_iso(platform)).all()
    ).results
    gate = asyncio.Semaphore(SWEEP_ENDPOINTS_AT_ONCE)

    async def drain(endpoint_id: str) -> int:
        async with gate:
            made = 0
            seen: set[str] = set()
            while time.monotonic() < deadline:
                now = now_iso(platform)
                due = [r["id"] for r in (
                    await platform.db.prepare(
                        "SELECT id FROM webhook_messages WHERE endpoint_id = ? AND status = 'pending' "
                        "AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
                        "ORDER BY next_attempt_at, id LIMIT ?"
                    ).bind(endpoint_id, now, now, CLAIM_PER_ENDPOINT).all()
                ).results if r["id"] not in seen]
                if not due:
                    break
                seen.update(due)
                endpoints: dict[str, Any] = {}
                attempts = await asyncio.gather(*(_send_one(platform, m, endpoint_id, endpoints) for m in due))
                made += sum(1 for a in attempts if a is not None)
            return made

    return sum(await asyncio.gather(*(drain(r["endpoint_id"]) for r in rows)))


async def _send_one(platform: Platform, message_id: str, endpoint_id: str, endpoints: dict[str, Any]) -> dict[str, Any] | None:
    """Claim and attempt one message inside its endpoint's concurrency gate (the claim is taken
    only once a slot is free, so a lease never runs out while waiting). A message whose endpoint
    already has a long queue in this process is left to the cron."""
    async with senders(platform).endpoint_slot(endpoint_id) as held:
        if not held:
            return None
        return await _claim_and_attempt(platform, message_id, endpoint_id, endpoints)


async def _claim_and_attempt(platform: Platform, message_id: str, endpoint_id: str,
                             endpoints: dict[str, Any]) -> dict[str, Any] | None:
    try:
        lease = _lease_token()
        now = now_iso(platform)
        message = await platform.db.prepare(
            "UPDATE webhook_messages SET lease_token = ?, lease_until = ? WHERE id = ? AND status = 'pending' "
            "AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) AND EXISTS (SELECT 1 FROM "
            "webhook_endpoints e WHERE e.id = webhook_messages.endpoint_id AND e.enabled = 1 "
            "AND (e.paused_until IS NULL OR e.paused_until <= ?)) RETURNING *"
        ).bind(lease, _in(platform, LEASE_SECONDS), message_id, now, now, now).first()
        if message is None:
            return None
        endpoint = endpoints.get(endpoint_id)
        if endpoint is None:
            endpoint = endpoints[endpoint_id] = await platform.db.prepare(
                "SELECT * FROM webhook_endpoints WHERE id = ?"
            ).bind(endpoint_id).first()
        return await _attempt(platform, message, endpoint, trigger="retry" if message["attempts"] else "event", lease=lease)
    except Exception:  # one message's failure must not stop the others; its lease expires
        log.exception("webhook message %s could not be attempted", message_id)
        return None


# --------------------------------------------------------------------------------------------------
# One attempt
# --------------------------------------------------------------------------------------------------


async def _attempt(
    platform: Platform, message: Mapping[str, Any], endpoint: Mapping[str, Any], *, trigger: str, lease: str
) -> dict[str, Any] | None:
    """Send one message once, log the attempt, and move the message and its endpoint on, in one batch
    (guarded by the lease: a sender whose lease was taken over changes nothing). None when the
    endpoint's rate limit put the message back instead (not an attempt)."""
    automatic = trigger in ("event", "retry")
    now_dt = platform.clock.now()
    if automatic and endpoint["rate_limit_per_minute"]:
        decision = await platform.rate_limiter.hit(
            f"webhook:{endpoint['id']}", limit=int(endpoint["rate_limit_per_minute"]), window_seconds=60
        )
        if not decision.allowed:  # not an attempt: put it back, due when the window frees a slot
            await platform.db.prepare(
                "UPDATE webhook_messages SET next_attempt_at = ?, lease_token = NULL, lease_until = NULL "
                "WHERE id = ? AND lease_token = ?"
            ).bind(iso(now_dt + timedelta(seconds=max(1, decision.reset_seconds))), message["id"], lease).run()
            return None
    outcome = await _send(platform, message, endpoint, now_dt)
    attempt = int(message["attempts"]) + 1
    now = iso(now_dt)
    status = outcome["status_code"]
    success = status is not None and 200 <= status < 300
    gone = status == 410
    retry_after = outcome["retry_after"]

    next_retry_at: str | None = None
    if automatic and not success and not gone:
        delay = retry_delay(attempt, secrets_module.SystemRandom().random()) if attempt < MAX_ATTEMPTS else None
        if delay is not None:
            delay = max(delay, retry_after or 0, int(endpoint["failure_backoff_seconds"] or 0))
            next_retry_at = iso(now_dt + timedelta(seconds=delay))

    delivery_id = new_id(platform, "whd")
    db = platform.db
    writes: list[Statement] = [
        db.prepare(
            "INSERT INTO webhook_deliveries (id, message_id, endpoint_id, event_id, event_type, attempt, trigger, status_code, "
            "success, error, response_excerpt, duration_ms, next_retry_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ).bind(delivery_id, message["id"], endpoint["id"], message["event_id"], message["event_type"], attempt, trigger,
               status, int(success), outcome["error"], outcome["excerpt"], outcome["duration_ms"], next_retry_at, now),
    ]
    # The message: succeeded, scheduled again, or given up. A manual resend that fails leaves a
    # pending message's own schedule as it was.
    if success:
        message_state = ("succeeded", None)
    elif automatic:
        message_state = ("pending", next_retry_at) if next_retry_at else ("failed", None)
    elif trigger == "test":
        message_state = ("failed", None)
    else:
        message_state = (None, None)
    if message_state[0] is None:
        writes.append(db.prepare(
            "UPDATE webhook_messages SET attempts = ?, lease_token = NULL, lease_until = NULL, updated_at = ? "
            "WHERE id = ? AND lease_token = ?"
        ).bind(attempt, now, message["id"], lease))
    else:
        writes.append(db.prepare(
            "UPDATE webhook_messages SET status = ?, next_attempt_at = ?, attempts = ?, lease_token = NULL, "
            "lease_until = NULL, updated_at = ? WHERE id = ? AND lease_token = ?"
        ).bind(message_state[0], message_state[1], attempt, now, message["id"], lease))
    # The endpoint's health.
    if success:
        writes.append(db.prepare(
            "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL"
        ).bind(endpoint["id"]))
    elif gone:
        writes += _disable(platform, endpoint["id"], "The endpoint answered 410 Gone: it asked not to be sent anything more.", now)
    elif automatic:
        pause = max(int(endpoint["failure_backoff_seconds"] or 0), retry_after or 0)
        if pause:
            writes.append(db.prepare(
                "UPDATE webhook_endpoints SET paused_until = MAX(COALESCE(paused_until, ''), ?) WHERE id = ?"
            ).bind(iso(now_dt + timedelta(seconds=pause)), endpoint["id"]))
        writes.append(db.prepare(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?) WHERE id = ?"
        ).bind(now, endpoint["id"]))
        cutoff = iso(now_dt - timedelta(seconds=DISABLE_AFTER_SECONDS))
        reason = f"Every delivery failed for 3 days (last: {_describe(outcome)})."
        writes += _disable(platform, endpoint["id"], reason, now, only_failing_before=cutoff)
    await senders(platform).write(writes)
    return delivery_view({
        "id": delivery_id, "message_id": message["id"], "endpoint_id": endpoint["id"], "event_id": message["event_id"],
        "event_type": message["event_type"], "attempt": attempt, "trigger": trigger, "status_code": status,
        "success": success, "error": outcome["error"], "response_excerpt": outcome["excerpt"],
        "duration_ms": outcome["duration_ms"], "next_retry_at": next_retry_at, "created_at": now,
    })


def _disable(platform: Platform, endpoint_id: str, reason: str, now: str, *, only_failing_before: str | None = None) -> list[Statement]:
    """Disable the endpoint (when its failure streak began before the cutoff, if one is given) and
    give up its pending messages, which stay in the log for a redelivery."""
    db = platform.db
    guard, args = ("AND failing_since IS NOT NULL AND failing_since <= ?", [only_failing_before]) if only_failing_before else ("", [])
    return [
        db.prepare(
            f"UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ? AND enabled = 1 {guard}"
        ).bind(reason, now, endpoint_id, *args),
        db.prepare(
            "UPDATE webhook_messages SET status = 'failed', next_attempt_at = NULL, updated_at = ? "
            "WHERE endpoint_id = ? AND status = 'pending' AND (lease_until IS NULL OR lease_until <= ?) "
            "AND (SELECT enabled FROM webhook_endpoints WHERE id = ?) = 0"
        ).bind(now, endpoint_id, now, endpoint_id),
    ]


async def _send(platform: Platform, message: Mapping[str, Any], endpoint: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """POST the message: `{status_code, error, excerpt, duration_ms, retry_after}`. Never raises for
    the target's faults (refused address, timeout, connection reset): they are the outcome."""
    started = time.monotonic()
    outcome: dict[str, Any] = {"status_code": None, "error": None, "excerpt": None, "retry_after": None}
    try:
        target, address = await check_target(platform, endpoint["url"])
        secret = await platform.vault.decrypt(
            endpoint["secret_sealed"], owner=endpoint["user_id"], purpose=f"{SECRET_PURPOSE}:{endpoint['id']}"
        )
        body = message["payload"].encode("utf-8")
        headers = standard_webhooks.headers(secret, message["id"], int(now.timestamp()), body)
        del secret
        assert platform.http is not None
        status, response_headers, excerpt = await asyncio.wait_for(
            _post(platform, target.url, headers, body, address), SEND_TIMEOUT_SECONDS
        )
        outcome["status_code"] = status
        outcome["excerpt"] = excerpt
        if 300 <= status < 400:
            location = response_headers.get("location", "")[:200]
            outcome["error"] = f"Redirect not followed (to {location or 'nowhere'}): webhook targets must answer themselves."
        elif status in (429, 503):
            outcome["retry_after"] = _retry_after(response_headers.get("retry-after"), now)
    except TargetRefused as exc:
        outcome["error"] = f"Target refused: {exc}"
    except asyncio.TimeoutError:
        outcome["error"] = f"No answer within {int(SEND_TIMEOUT_SECONDS)} s."
    except Exception as exc:  # network faults; never the secret (not in any message here)
        outcome["error"] = f"Could not connect: {type(exc).__name__}."
    outcome["duration_ms"] = int((time.monotonic() - started) * 1000)
    return outcome


async def _post(platform: Platform, url: str, headers: Mapping[str, str], body: bytes, address: str) -> tuple[int, Mapping[str, str], str]:
    assert platform.http is not None
    response = await platform.http.stream("POST", url, headers=headers, body=body, timeout=SEND_TIMEOUT_SECONDS, pin=address)
    received = bytearray()
    try:
        async for chunk in response.chunks:
            received += chunk
            if len(received) >= READ_LIMIT_BYTES:
                break
    finally:
        await response.close()
    excerpt = bytes(received[:EXCERPT_BYTES]).decode("utf-8", "replace")
    return response.status, response.headers, excerpt


def _retry_after(value: str | None, now: datetime) -> int | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = int((when - now).total_seconds())
    return max(0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def _describe(outcome: Mapping[str, Any]) -> str:
    return f"HTTP {outcome['status_code']}" if outcome["status_code"] is not None else (outcome["error"] or "no answer")


def _lease_token() -> str:
    return secrets_module.token_hex(12)


def _in(platform: Platform, seconds: float) -> str:
    return iso(platform.clock.now() + timedelta(seconds=seconds))


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
