"""`Idempotency-Key` for creating requests (docs/api/README.md, idempotency).

The first request with a key records an in-flight marker; its response is stored when it completes.
Within 24 hours the same key and the same request replay that response; the same key with a different
request is refused (422); a key whose first request is still running answers 409. A request that
fails with a server error releases its key so the client can retry it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastest.domain.ids import iso
from fastest.errors import Conflict, ValidationFailed
from fastest.platform import Platform

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: Any


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def validate_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be 1–255 printable characters.",
            fields={"header.Idempotency-Key": "invalid"},
        )


async def begin(platform: Platform, user_id: str, key: str, request_fingerprint: str) -> StoredResponse | None:
    """Claim the key for this request, or return the response to replay. Raises 409/422 as documented."""
    validate_key(key)
    now = platform.clock.now()
    db = platform.db
    # An expired record no longer counts; clearing it first lets the insert below claim the key.
    await db.prepare("DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND expires_at <= ?").bind(
        user_id, key, iso(now)
    ).run()
    expires_at = iso(now + timedelta(hours=platform.settings.idempotency_ttl_hours))
    claimed = await db.prepare(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, state, created_at, expires_at) "
        "VALUES (?, ?, ?, 'in_flight', ?, ?) ON CONFLICT(user_id, key) DO NOTHING"
    ).bind(user_id, key, request_fingerprint, iso(now), expires_at).run()
    if claimed.changes == 1:
        return None
    row = await db.prepare(
        "SELECT fingerprint, state, response_status, response_body FROM idempotency_keys WHERE user_id = ? AND key = ?"
    ).bind(user_id, key).first()
    if row is None:  # released between our insert and read: treat as a race and ask for a retry
        raise Conflict("This Idempotency-Key is being processed; retry shortly.", code="idempotency_in_flight")
    if row["fingerprint"] != request_fingerprint:
        raise ValidationFailed(
            "This Idempotency-Key was used with a different request.",
            code="idempotency_key_reused",
            fields={"header.Idempotency-Key": "already used with a different request"},
        )
    if row["state"] == "in_flight":
        raise Conflict("A request with this Idempotency-Key is still in progress.", code="idempotency_in_flight")
    return StoredResponse(status=row["response_status"], body=json.loads(row["response_body"]))


async def complete(platform: Platform, user_id: str, key: str, status: int, body: Any) -> None:
    await platform.db.prepare(
        "UPDATE idempotency_keys SET state = 'done', response_status = ?, response_body = ? "
        "WHERE user_id = ? AND key = ?"
    ).bind(status, json.dumps(body, separators=(",", ":")), user_id, key).run()


async def release(platform: Platform, user_id: str, key: str) -> None:
    await platform.db.prepare(
        "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND state = 'in_flight'"
    ).bind(user_id, key).run()


async def purge_expired(platform: Platform) -> int:
    """Cron: drop records past their 24 hours."""
    result = await platform.db.prepare("DELETE FROM idempotency_keys WHERE expires_at <= ?").bind(
        iso(platform.clock.now())
    ).run()
    return result.changes
