"""The OAuth 2.0 device authorization grant (RFC 8628), for `fastest login`.

1. The CLI starts (`start`): it gets a device code (kept secret, stored here only as its SHA-256)
   and a user code the person types on the verification page.
2. The CLI polls (`poll`) no faster than `interval`; polling faster answers `slow_down` and raises
   the interval by 5 s for good. Until a decision: `authorization_pending`.
3. A signed-in person approves or denies the user code (`decide`). Looking codes up is rate-limited
   per IP and per user, so user codes cannot be guessed.
4. The next poll after approval redeems the device code for one token, once: the redemption and the
   token are one batch guarded by `redeemed_at IS NULL`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from fastest.domain import device_codes, tokens
from fastest.domain.ids import iso, parse_iso
from fastest.errors import ApiError, NotFound, RateLimited, ValidationFailed
from fastest.platform import Platform
from fastest.ports import ConstraintError
from fastest.services.common import new_id, now_iso
from fastest.services.identity import accounts as identity
from fastest.services.identity import audit
from fastest.services.identity.audit import RequestContext

# Lookups of user codes (page, authorize, deny) per IP and per user, per window.
CODE_ATTEMPTS_PER_WINDOW = 10
CODE_ATTEMPT_WINDOW_SECONDS = 300
MAX_CLIENT_NAME_CHARS = 100


class OAuthError(Exception):
    """An RFC 6749 §5.2 / RFC 8628 §3.5 error: `{error, error_description}` with status 400."""

    def __init__(self, error: str, description: str, *, interval: int | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.interval = interval

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "error_description": self.description}
        if self.interval is not None:
            body["interval"] = self.interval
        return body


class InvalidUserCode(ApiError):
    status, code, title = 404, "invalid_user_code", "Unknown or expired code"


@dataclass(frozen=True, slots=True)
class PendingDevice:
    """What the verification page shows about a code before a person decides."""

    user_code: str  # display form, XXXX-XXXX
    client_name: str
    abilities: tuple[str, ...]
    expires_at: str


async def start(
    platform: Platform, *, client_name: str = "", abilities: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """A new device authorization (RFC 8628 §3.2's response)."""
    wanted = tokens.DEFAULT_ABILITIES if abilities is None else abilities
    if not wanted:
        raise ValidationFailed("Ask for at least one ability.", fields={"scope": "no abilities"})
    settings = platform.settings
    now = platform.clock.now()
    device_code = device_codes.device_code_from(secrets.token_bytes(device_codes.DEVICE_CODE_BYTES))
    for _ in range(5):  # a user-code collision among live codes is rare; try another
        user_code = device_codes.user_code_from(secrets.token_bytes(32))
        try:
            await platform.db.prepare(
                "INSERT INTO device_codes (id, device_code_hash, user_code, client_name, abilities, interval_seconds, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ).bind(
                new_id(platform, "dev"), device_codes.device_code_hash(device_code), user_code,
                client_name[:MAX_CLIENT_NAME_CHARS], json.dumps(list(wanted)), settings.device_poll_interval_seconds,
                iso(now), iso(now + timedelta(seconds=settings.device_code_ttl_seconds)),
            ).run()
            break
        except ConstraintError:
            continue
    else:  # pragma: no cover - 20^8 codes
        raise RateLimited("Too many device authorizations at once; try again.")
    shown = device_codes.display_user_code(user_code)
    base = platform.settings.public_url.rstrip("/")
    return {
        "device_code": device_code,
        "user_code": shown,
        "verification_uri": f"{base}/device",
        "verification_uri_complete": f"{base}/device?user_code={shown}",
        "expires_in": settings.device_code_ttl_seconds,
        "interval": settings.device_poll_interval_seconds,
    }


async def poll(
    platform: Platform, grant_type: str | None, device_code: str | None, context: RequestContext
) -> dict[str, Any]:
    """One poll of `POST /v1/oauth/token`: the token once approved, else an `OAuthError`."""
    if grant_type != device_codes.GRANT_TYPE:
        raise OAuthError("unsupported_grant_type", f"Only grant_type={device_codes.GRANT_TYPE} is supported here.")
    if not isinstance(device_code, str) or not device_code or len(device_code) > 256:
        raise OAuthError("invalid_request", "device_code is required.")
    row = await platform.db.prepare("SELECT * FROM device_codes WHERE device_code_hash = ?").bind(
        device_codes.device_code_hash(device_code)
    ).first()
    if row is None or row["redeemed_at"] is not None:
        raise OAuthError("invalid_grant", "The device code is unknown or was already used.")
    now = platform.clock.now()
    if parse_iso(row["expires_at"]) <= now:
        raise OAuthError("expired_token", "The device code has expired; run the login again.")
    if row["status"] == "denied":
        raise OAuthError("access_denied", "The authorization was denied.")
    if row["status"] == "pending":
        last = row["last_polled_at"]
        if last is not None and now - parse_iso(last) < timedelta(seconds=row["interval_seconds"]):
            interval = row["interval_seconds"] + device_codes.SLOW_DOWN_STEP_SECONDS
            await platform.db.prepare(
                "UPDATE device_codes SET interval_seconds = interval_seconds + ?, last_polled_at = ? WHERE id = ?"
            ).bind(device_codes.SLOW_DOWN_STEP_SECONDS, iso(now), row["id"]).run()
            raise OAuthError("slow_down", f"Polling too fast: wait {interval} s between polls.", interval=interval)
        await platform.db.prepare("UPDATE device_codes SET last_polled_at = ? WHERE id = ?").bind(iso(now), row["id"]).run()
        raise OAuthError("authorization_pending", "Waiting for the person to approve the code.")
    return await _redeem(platform, row, context)


async def _redeem(platform: Platform, row: Mapping[str, Any], context: RequestContext) -> dict[str, Any]:
    user = await identity.get_user(platform, row["user_id"])
    issued, token_row = identity.new_token(
        platform, user["id"], abilities=tuple(json.loads(row["abilities"])),
        label=f"device: {row['client_name'] or 'CLI'}",
    )
    # The redemption claims the row for this token id; the token is inserted only if the claim won.
    results = await platform.db.batch(
        [
            platform.db.prepare(
                "UPDATE device_codes SET redeemed_at = ?, token_id = ? WHERE id = ? AND redeemed_at IS NULL "
                "AND status = 'approved'"
            ).bind(now_iso(platform), issued.token_id, row["id"]),
            platform.db.prepare(
                f"INSERT INTO auth_tokens ({identity.TOKEN_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM device_codes WHERE id = ? AND token_id = ?)"
            ).bind(*token_row, row["id"], issued.token_id),
            identity.token_created(
                platform, issued, token_row[3], context,
                details={"device_user_code": device_codes.display_user_code(row["user_code"])}, if_changed=True,
            ),
        ]
    )
    if results[0].changes != 1:
        raise OAuthError("invalid_grant", "The device code is unknown or was already used.")
    return {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": platform.settings.token_ttl_days * 86400,
        "abilities": list(issued.abilities),
        "user": {"id": user["id"], "email": user["email"]},
    }


async def _count_attempt(platform: Platform, context: RequestContext, user_id: str | None) -> None:
    subjects = [f"ip:{context.ip or 'unknown'}"] + ([f"user:{user_id}"] if user_id else [])
    for subject in subjects:
        decision = await platform.rate_limiter.hit(
            f"device-code:{subject}", limit=CODE_ATTEMPTS_PER_WINDOW, window_seconds=CODE_ATTEMPT_WINDOW_SECONDS
        )
        if not decision.allowed:
            retry_after = max(1, decision.reset_seconds)
            raise RateLimited(
                f"Too many code attempts; retry in {retry_after} s.", headers={"Retry-After": str(retry_after)}
            )


async def _pending_row(platform: Platform, user_code: str, context: RequestContext, user_id: str | None) -> dict[str, Any]:
    await _count_attempt(platform, context, user_id)
    code = device_codes.normalise_user_code(user_code)
    row = None
    if code is not None:
        row = await platform.db.prepare("SELECT * FROM device_codes WHERE user_code = ?").bind(code).first()
    if row is None or row["status"] != "pending" or parse_iso(row["expires_at"]) <= platform.clock.now():
        raise InvalidUserCode("That code is unknown, expired or already used. Check it, or start the login again.")
    return row


async def lookup(platform: Platform, user_code: str, context: RequestContext) -> PendingDevice:
    """What a code would authorize (for the page), counted as an attempt (per IP: nobody is signed in yet)."""
    row = await _pending_row(platform, user_code, context, None)
    return PendingDevice(
        user_code=device_codes.display_user_code(row["user_code"]),
        client_name=row["client_name"] or "fastest CLI",
        abilities=tuple(json.loads(row["abilities"])),
        expires_at=row["expires_at"],
    )


async def decide(
    platform: Platform,
    user_id: str,
    user_code: str,
    *,
    approve: bool,
    context: RequestContext,
    method: str,
    ability_ceiling: frozenset[str] | None = None,
) -> PendingDevice:
    """Approve or deny a pending code as `user_id`, who proved who they are by `method` (google,
    local-owner, token). A person approving with a bearer token cannot hand the device more than
    that token has (`ability_ceiling`)."""
    row = await _pending_row(platform, user_code, context, user_id)
    abilities = tuple(json.loads(row["abilities"]))
    if approve and ability_ceiling is not None:
        abilities = tuple(a for a in abilities if a in ability_ceiling)
        if not abilities:
            raise ValidationFailed("Your token has none of the abilities this device asks for.")
    shown = device_codes.display_user_code(row["user_code"])
    status, verb = ("approved", "Approved") if approve else ("denied", "Denied")
    results = await platform.db.batch(
        [
            platform.db.prepare(
                "UPDATE device_codes SET status = ?, user_id = ?, abilities = ?, decided_at = ? "
                "WHERE id = ? AND status = 'pending'"
            ).bind(status, user_id, json.dumps(list(abilities)), now_iso(platform), row["id"]),
            audit.record(
                platform, user_id, f"device.{status}", f"{verb} device sign-in {shown} ({row['client_name'] or 'CLI'})",
                context,
                {"user_code": shown, "client_name": row["client_name"], "abilities": list(abilities), "method": method},
                if_changed=True,
            ),
        ]
    )
    if results[0].changes != 1:
        raise NotFound("That code was decided meanwhile.")
    return PendingDevice(user_code=shown, client_name=row["client_name"] or "fastest CLI", abilities=abilities,
                         expires_at=row["expires_at"])


async def purge_expired(platform: Platform) -> int:
    """Drop device authorizations a day past their expiry (job `purge-device-codes`)."""
    cutoff = iso(platform.clock.now() - timedelta(days=1))
    result = await platform.db.prepare("DELETE FROM device_codes WHERE expires_at < ?").bind(cutoff).run()
    return result.changes


def local_owner_allowed(platform: Platform, client_ip: str | None) -> bool:
    """The local runtime's owner sign-in on the device page: only on the local runtime, only in the
    local environment, only while Google sign-in is not configured, and only for a browser on this
    machine. A Worker does not serve its own machine, so it cannot be switched on there."""
    return (
        platform.capabilities.serves_its_own_machine
        and platform.settings.environment == "local"
        and not platform.settings.google_audiences
        and client_ip in ("127.0.0.1", "::1")
    )
