"""Integration webhooks: a user's endpoints (create, change, rotate the secret, delete) and the log of
their deliveries. Sending is `fastest.services.webhooks.delivery`.

Safety: an endpoint's URL is checked when it is saved and again at every send (`check_target`): HTTPS
only (plain HTTP only to loopback where the platform allows it and the operator asked for it), the
host's addresses are resolved and checked, and the connection goes to the checked address. The
signing secret is sealed with the Vault, shown once, and never logged.
"""

from __future__ import annotations

import json
import secrets as secrets_module
from typing import Any, Mapping, Sequence

from fastest.domain import standard_webhooks
from fastest.domain.webhook_targets import Target, TargetRefused, check_addresses, is_ip_literal, parse_target
from fastest.errors import Conflict, NotFound, ValidationFailed
from fastest.platform import Platform
from fastest.services.common import dumps, new_id, now_iso, split_page
from fastest.services.identity import audit
from fastest.services.identity.audit import RequestContext
from fastest.services.webhooks import outbox as webhook_outbox

MAX_ENDPOINTS_PER_USER = 25
SECRET_PURPOSE = "webhook_secret"


# --------------------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------------------


def endpoint_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "events": json.loads(row["events"]),
        "enabled": bool(row["enabled"]),
        "rate_limit_per_minute": row["rate_limit_per_minute"],
        "failure_backoff_seconds": row["failure_backoff_seconds"],
        "project_id": row["project_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "disabled_reason": row["disabled_reason"],
    }


def loopback_http_allowed(platform: Platform) -> bool:
    """The operator's plain-HTTP-to-loopback exception: only where the server runs on its user's own
    machine (never on a Worker)."""
    return platform.capabilities.serves_its_own_machine and platform.settings.webhooks_loopback_http


async def check_target(platform: Platform, url: str) -> tuple[Target, str]:
    """The parsed target and the checked address to connect to (TargetRefused otherwise)."""
    target = parse_target(url, allow_loopback_http=loopback_http_allowed(platform))
    if platform.http is None:
        raise TargetRefused("This server cannot send HTTP requests.")
    try:
        addresses = [target.host] if is_ip_literal(target.host) else await platform.http.resolve(target.host, target.port)
    except OSError as exc:
        raise TargetRefused(f"The host {target.host} did not resolve.") from exc
    return target, check_addresses(target, addresses)


async def _validated_url(platform: Platform, url: str) -> str:
    try:
        await check_target(platform, url)
    except TargetRefused as exc:
        raise ValidationFailed(str(exc), code="webhook_url_refused", fields={"url": str(exc)}) from None
    return url


def _validated_events(events: Sequence[str]) -> list[str]:
    unknown = sorted({e for e in events if e != webhook_outbox.ALL and e not in webhook_outbox.CATALOGUE})
    if unknown:
        raise ValidationFailed(
            f"Unknown event type(s): {', '.join(unknown)}.", fields={"events": "known: " + ", ".join(webhook_outbox.CATALOGUE)}
        )
    return sorted(set(events))


async def get_owned(platform: Platform, user_id: str, endpoint_id: str) -> dict[str, Any]:
    row = await platform.db.prepare("SELECT * FROM webhook_endpoints WHERE id = ? AND user_id = ?").bind(
        endpoint_id, user_id
    ).first()
    if row is None:
        raise NotFound("Webhook endpoint not found.")
    return row


async def _check_project(platform: Platform, user_id: str, project_id: str | None) -> None:
    if project_id is None:
        return
    from fastest.services import projects

    await projects.get_owned(platform, user_id, project_id)


async def list_endpoints(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    rows = (
        await platform.db.prepare("SELECT * FROM webhook_endpoints WHERE user_id = ? ORDER BY created_at, id")
        .bind(user_id).all()
    ).results
    return [endpoint_view(r) for r in rows]


async def create_endpoint(
    platform: Platform, user_id: str, *, url: str, events: Sequence[str], enabled: bool = True,
    rate_limit_per_minute: int | None = None, failure_backoff_seconds: int | None = None,
    project_id: str | None = None, context: RequestContext | None = None,
) -> tuple[dict[str, Any], str]:
    """The new endpoint and its signing secret (`whsec_…`), which is shown only this once."""
    await _check_project(platform, user_id, project_id)
    events = _validated_events(events)
    await _validated_url(platform, url)
    count = await platform.db.prepare("SELECT COUNT(*) AS n FROM webhook_endpoints WHERE user_id = ?").bind(user_id).first("n")
    if count >= MAX_ENDPOINTS_PER_USER:
        raise Conflict(f"You have {MAX_ENDPOINTS_PER_USER} webhook endpoints already; delete one first.",
                       code="too_many_webhook_endpoints")
    endpoint_id = new_id(platform, "whk")
    secret = standard_webhooks.encode_secret(secrets_module.token_bytes(standard_webhooks.SECRET_BYTES))
    sealed = await platform.vault.encrypt(secret, owner=user_id, purpose=f"{SECRET_PURPOSE}:{endpoint_id}")
    now = now_iso(platform)
    await platform.db.batch([
        platform.db.prepare(
            "INSERT INTO webhook_endpoints (id, user_id, project_id, url, events, secret_sealed, enabled, "
            "rate_limit_per_minute, failure_backoff_seconds, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ).bind(endpoint_id, user_id, project_id, url, dumps(events), sealed, int(enabled), rate_limit_per_minute,
               failure_backoff_seconds, now, now),
        audit.record(platform, user_id, "webhook.created", f"Added webhook endpoint {endpoint_id}",
                     context or RequestContext(), {"webhook_id": endpoint_id, "url": url}),
    ])
    return endpoint_view(await get_owned(platform, user_id, endpoint_id)), secret


async def update_endpoint(platform: Platform, user_id: str, endpoint_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the given fields. Enabling an endpoint clears its disabled reason and failure streak."""
    current = await get_owned(platform, user_id, endpoint_id)
    sets: list[str] = []
    args: list[Any] = []
    if "url" in changes:
        sets.append("url = ?")
        args.append(await _validated_url(platform, changes["url"]))
    if "events" in changes:
        sets.append("events = ?")
        args.append(dumps(_validated_events(changes["events"])))
    if "project_id" in changes:
        await _check_project(platform, user_id, changes["project_id"])
        sets.append("project_id = ?")
        args.append(changes["project_id"])
    for name in ("rate_limit_per_minute", "failure_backoff_seconds"):
        if name in changes:
            sets.append(f"{name} = ?")
            args.append(changes[name])
    if "enabled" in changes:
        sets.append("enabled = ?")
        args.append(int(bool(changes["enabled"])))
        if changes["enabled"] and not current["enabled"]:
            sets.append("disabled_reason = NULL, failing_since = NULL, paused_until = NULL")
        elif not changes["enabled"]:
            sets.append("disabled_reason = ?")
            args.append("Disabled by its owner.")
    if sets:
        sets.append("updated_at = ?")
        args.append(now_iso(platform))
        await platform.db.prepare(f"UPDATE webhook_endpoints SET {', '.join(sets)} WHERE id = ? AND user_id = ?").bind(
            *args, endpoint_id, user_id
        ).run()
    return endpoint_view(await get_owned(platform, user_id, endpoint_id))


async def rotate_secret(
    platform: Platform, user_id: str, endpoint_id: str, context: RequestContext | None = None
) -> tuple[dict[str, Any], str]:
    """A new signing secret (shown this once); the old one stops signing immediately."""
    await get_owned(platform, user_id, endpoint_id)
    secret = standard_webhooks.encode_secret(secrets_module.token_bytes(standard_webhooks.SECRET_BYTES))
    sealed = await platform.vault.encrypt(secret, owner=user_id, purpose=f"{SECRET_PURPOSE}:{endpoint_id}")
    await platform.db.batch([
        platform.db.prepare(
            "UPDATE webhook_endpoints SET secret_sealed = ?, updated_at = ? WHERE id = ? AND user_id = ?"
        ).bind(sealed, now_iso(platform), endpoint_id, user_id),
        audit.record(platform, user_id, "webhook.secret_rotated", f"Rotated the secret of webhook endpoint {endpoint_id}",
                     context or RequestContext(), {"webhook_id": endpoint_id}, if_changed=True),
    ])
    return endpoint_view(await get_owned(platform, user_id, endpoint_id)), secret


async def delete_endpoint(platform: Platform, user_id: str, endpoint_id: str, context: RequestContext | None = None) -> None:
    """The endpoint, its queued messages and its deliveries log (cascade)."""
    endpoint = await get_owned(platform, user_id, endpoint_id)
    await platform.db.batch([
        platform.db.prepare("DELETE FROM webhook_endpoints WHERE id = ? AND user_id = ?").bind(endpoint_id, user_id),
        audit.record(platform, user_id, "webhook.deleted", f"Deleted webhook endpoint {endpoint_id}",
                     context or RequestContext(), {"webhook_id": endpoint_id, "url": endpoint["url"]}, if_changed=True),
    ])


# --------------------------------------------------------------------------------------------------
# Deliveries log
# --------------------------------------------------------------------------------------------------


def delivery_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "endpoint_id": row["endpoint_id"],
        "message_id": row["message_id"],  # the webhook-id header: the same on every attempt
        "event": row["event_type"],
        "event_id": row["event_id"],
        "attempt": row["attempt"],
        "trigger": row["trigger"],
        "success": bool(row["success"]),
        "status_code": row["status_code"],
        "error": row["error"],
        "response_excerpt": row["response_excerpt"],
        "duration_ms": row["duration_ms"],
        "next_retry_at": row["next_retry_at"],
        "created_at": row["created_at"],
    }


async def deliveries_page(
    platform: Platform, user_id: str, endpoint_id: str, *, limit: int, before_seq: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paginated by insertion order."""
    await get_owned(platform, user_id, endpoint_id)
    after, args = ("AND seq < ?", [before_seq]) if before_seq is not None else ("", [])
    rows = (
        await platform.db.prepare(
            f"SELECT * FROM webhook_deliveries WHERE endpoint_id = ? {after} ORDER BY seq DESC LIMIT ?"
        ).bind(endpoint_id, *args, limit + 1).all()
    ).results
    page, cursor = split_page(rows, limit, lambda r: (r["seq"],))
    return [delivery_view(r) for r in page], cursor
