"""Who is calling: users, bearer tokens, abilities and the fresh-session rule.

Tokens are opaque (`fst_…`, see `domain.tokens`); only their SHA-256 is stored. A token carries its
abilities, expires after `token_ttl_days`, can be revoked, and records when it was last used (at most
once a minute, so a busy client does not turn every read into a write).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from fastest.domain import tokens
from fastest.domain.ids import ENTROPY_BYTES, iso, make_id, millis_of, parse_iso
from fastest.errors import Forbidden, ReauthenticationRequired, Unauthenticated, ValidationFailed
from fastest.platform import Platform
from fastest.ports import RateDecision
from fastest.services import rate_limits
from fastest.services.common import new_id, now_iso

LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: str
    email: str
    token_id: str
    abilities: frozenset[str]
    authenticated_at: datetime

    def can(self, ability: str) -> bool:
        return ability in self.abilities


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str  # shown once, never stored
    token_id: str
    user_id: str
    abilities: tuple[str, ...]
    expires_at: str


_AUTH_QUERY = """
SELECT t.id AS token_id, t.user_id, t.abilities, t.authenticated_at, t.expires_at, t.last_used_at,
       t.revoked_at, u.email
  FROM auth_tokens t JOIN users u ON u.id = t.user_id
 WHERE t.token_hash = ?
"""


async def authenticate(platform: Platform, token: str) -> Principal:
    """Resolve a bearer token to a principal, or raise 401 (missing, malformed, unknown, expired, revoked)."""
    if not tokens.is_well_formed(token):
        raise Unauthenticated("The bearer token is malformed.", code="invalid_token")
    row = await platform.db.prepare(_AUTH_QUERY).bind(tokens.token_hash(token)).first()
    now = platform.clock.now()
    if row is None or row["revoked_at"] is not None:
        raise Unauthenticated("The bearer token is not valid.", code="invalid_token")
    if parse_iso(row["expires_at"]) <= now:
        raise Unauthenticated("The bearer token has expired.", code="token_expired")
    last_used = row["last_used_at"]
    if last_used is None or now - parse_iso(last_used) >= LAST_USED_RESOLUTION:
        await platform.db.prepare("UPDATE auth_tokens SET last_used_at = ? WHERE id = ?").bind(
            iso(now), row["token_id"]
        ).run()
    return Principal(
        user_id=row["user_id"],
        email=row["email"],
        token_id=row["token_id"],
        abilities=frozenset(json.loads(row["abilities"])),
        authenticated_at=parse_iso(row["authenticated_at"]),
    )


def require_ability(principal: Principal, ability: str) -> None:
    if not principal.can(ability):
        raise Forbidden(f"This token lacks the '{ability}' ability.", extra={"required_ability": ability})


async def authorize(
    platform: Platform,
    token: str | None,
    ability: str,
    *,
    route_class: str = "default",
    fresh: bool = False,
    on_rate_decision: Callable[[RateDecision], None] | None = None,
) -> Principal:
    """The one sequence every authenticated request goes through: authenticate the bearer token
    (None: no `Authorization: Bearer` header), spend one unit of the caller's rate limit for
    `route_class`, then check the ability (and, for sensitive routes, that the session is fresh).

    `on_rate_decision` sees the rate decision as soon as it is made, so the caller can report the
    `RateLimit` headers even when the ability check then fails.
    """
    if token is None:
        raise Unauthenticated("Send `Authorization: Bearer <token>`.")
    principal = await authenticate(platform, token)
    decision = await rate_limits.enforce(platform, principal.user_id, route_class)
    if on_rate_decision is not None:
        on_rate_decision(decision)
    require_ability(principal, ability)
    if fresh:
        require_fresh_session(platform, principal)
    return principal


def require_fresh_session(platform: Platform, principal: Principal) -> None:
    """Secret reveals, credential writes and deletions need a sign-in from the last few minutes."""
    window = timedelta(minutes=platform.settings.fresh_session_minutes)
    if platform.clock.now() - principal.authenticated_at > window:
        raise ReauthenticationRequired(
            f"Sign in again: this action needs a session confirmed within the last "
            f"{platform.settings.fresh_session_minutes} minutes."
        )


async def ensure_user(platform: Platform, email: str, *, name: str | None = None) -> dict[str, Any]:
    """Find the user with this email or create it (emails compare case-insensitively)."""
    email = email.strip()
    if "@" not in email or len(email) > 320:
        raise ValidationFailed("A valid email address is required.", fields={"email": "invalid email"})
    found = await platform.db.prepare("SELECT * FROM users WHERE email = ?").bind(email).first()
    if found is not None:
        return found
    now = now_iso(platform)
    user_id = new_id(platform, "usr")
    await platform.db.prepare(
        "INSERT INTO users (id, email, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(email) DO NOTHING"
    ).bind(user_id, email, name, now, now).run()
    # Re-read: a concurrent sign-in may have created the user first.
    return await platform.db.prepare("SELECT * FROM users WHERE email = ?").bind(email).first()


async def issue_token(
    platform: Platform,
    user_id: str,
    *,
    abilities: tuple[str, ...] = tokens.DEFAULT_ABILITIES,
    label: str = "",
) -> IssuedToken:
    now = platform.clock.now()
    token = tokens.format_token(secrets.token_bytes(tokens.ENTROPY_BYTES))
    token_id = new_id(platform, "tok")
    expires_at = iso(now + timedelta(days=platform.settings.token_ttl_days))
    await platform.db.prepare(
        "INSERT INTO auth_tokens (id, user_id, token_hash, label, abilities, created_at, authenticated_at, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    ).bind(
        token_id, user_id, tokens.token_hash(token), label, json.dumps(list(abilities)), iso(now), iso(now), expires_at
    ).run()
    return IssuedToken(token=token, token_id=token_id, user_id=user_id, abilities=abilities, expires_at=expires_at)


async def revoke_token(platform: Platform, user_id: str, token_id: str) -> bool:
    result = await platform.db.prepare(
        "UPDATE auth_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL"
    ).bind(now_iso(platform), token_id, user_id).run()
    return result.changes == 1


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def bootstrap_token_sql(
    email: str, *, abilities: tuple[str, ...], label: str, now: datetime, ttl_days: int
) -> tuple[str, str]:
    """A new token for `email` as SQL to run on a remote D1 (`wrangler d1 execute --file`), creating
    the user if needed. Returns (token, sql). For the first token of a fresh Cloudflare deployment,
    before any sign-in method exists; only the token's hash is in the SQL."""
    email = email.strip()
    if "@" not in email or len(email) > 320:
        raise ValidationFailed("A valid email address is required.", fields={"email": "invalid email"})
    token = tokens.format_token(secrets.token_bytes(tokens.ENTROPY_BYTES))
    millis = millis_of(now)
    user_id = make_id("usr", millis, secrets.token_bytes(ENTROPY_BYTES))
    token_id = make_id("tok", millis, secrets.token_bytes(ENTROPY_BYTES))
    stamp, expires = iso(now), iso(now + timedelta(days=ttl_days))
    q = _sql_literal
    sql = (
        f"INSERT INTO users (id, email, created_at, updated_at) VALUES ({q(user_id)}, {q(email)}, {q(stamp)}, {q(stamp)}) "
        "ON CONFLICT(email) DO NOTHING;\n"
        "INSERT INTO auth_tokens (id, user_id, token_hash, label, abilities, created_at, authenticated_at, expires_at) "
        f"SELECT {q(token_id)}, id, {q(tokens.token_hash(token))}, {q(label)}, {q(json.dumps(list(abilities)))}, "
        f"{q(stamp)}, {q(stamp)}, {q(expires)} FROM users WHERE email = {q(email)};\n"
    )
    return token, sql
