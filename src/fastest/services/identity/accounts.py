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
from typing import Any, Callable, Mapping

from fastest.domain import tokens
from fastest.domain.ids import ENTROPY_BYTES, iso, make_id, millis_of, parse_iso
from fastest.errors import (
    Forbidden,
    NotFound,
    ReauthenticationRequired,
    Unauthenticated,
    ValidationFailed,
)
from fastest.platform import Platform
from fastest.ports import RateDecision, Statement
from fastest.services.common import new_id, now_iso, split_page
from fastest.services.identity import audit
from fastest.services.identity.audit import RequestContext
from fastest.services.safeguards import rate_limits

LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: str
    email: str
    token_id: str
    abilities: frozenset[str]
    authenticated_at: datetime
    expires_at: datetime | None = None  # the token's; live streams end then (conversations.streams)

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
        expires_at=parse_iso(row["expires_at"]),
    )


def require_ability(principal: Principal, ability: str) -> None:
    if not principal.can(ability):
        raise Forbidden(f"This token lacks the '{ability}' ability.", extra={"required_ability": ability})


async def authorize(
    platform: Platform,
    token: str | None,
    ability: str | None,
    *,
    route_class: str = "default",
    fresh: bool = False,
    on_rate_decision: Callable[[RateDecision], None] | None = None,
) -> Principal:
    """The one sequence every authenticated request goes through: authenticate the bearer token
    (None: no `Authorization: Bearer` header), spend one unit of the caller's rate limit for
    `route_class`, then check the ability (and, for sensitive routes, that the session is fresh).

    `on_rate_decision` sees the rate decision as soon as it is made, so the caller can report the
    `RateLimit` headers even when the ability check then fails. `ability=None`: any valid token
    (routes about the caller's own session, such as `/v1/auth/me`).
    """
    if token is None:
        raise Unauthenticated("Send `Authorization: Bearer <token>`.")
    principal = await authenticate(platform, token)
    decision = await rate_limits.enforce(platform, principal.user_id, route_class)
    if on_rate_decision is not None:
        on_rate_decision(decision)
    if ability is not None:
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


def checked_email(email: str) -> str:
    email = email.strip()
    if "@" not in email or len(email) > 320:
        raise ValidationFailed("A valid email address is required.", fields={"email": "invalid email"})
    return email


def _mint_token() -> str:
    return tokens.format_token(secrets.token_bytes(tokens.ENTROPY_BYTES))


async def ensure_user(platform: Platform, email: str, *, name: str | None = None) -> dict[str, Any]:
    """Find the user with this email or create it (emails compare case-insensitively)."""
    email = checked_email(email)
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


TOKEN_COLUMNS = "id, user_id, token_hash, label, abilities, created_at, authenticated_at, expires_at"
MAX_LABEL_CHARS = 100


def new_token(
    platform: Platform, user_id: str, *, abilities: tuple[str, ...], label: str
) -> tuple[IssuedToken, tuple[Any, ...]]:
    """A fresh token and the values of its `auth_tokens` row (in `TOKEN_COLUMNS` order), for callers
    that insert it inside their own batch. Only the token's hash is in the row."""
    now = platform.clock.now()
    token = _mint_token()
    token_id = new_id(platform, "tok")
    expires_at = iso(now + timedelta(days=platform.settings.token_ttl_days))
    row = (
        token_id, user_id, tokens.token_hash(token), label[:MAX_LABEL_CHARS], json.dumps(list(abilities)),
        iso(now), iso(now), expires_at,
    )
    issued = IssuedToken(token=token, token_id=token_id, user_id=user_id, abilities=abilities, expires_at=expires_at)
    return issued, row


def insert_token(platform: Platform, row: tuple[Any, ...]) -> Statement:
    return platform.db.prepare(f"INSERT INTO auth_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)").bind(*row)


async def issue_token(
    platform: Platform,
    user_id: str,
    *,
    abilities: tuple[str, ...] = tokens.DEFAULT_ABILITIES,
    label: str = "",
) -> IssuedToken:
    """Issue a token outside a request (the operator's `fastest admin token`, tests): not audited,
    as there is no request to attribute it to; sign-ins audit theirs (`sign_in`)."""
    issued, row = new_token(platform, user_id, abilities=abilities, label=label)
    await platform.db.batch([insert_token(platform, row)])
    return issued


def token_created(platform: Platform, issued: IssuedToken, label: str, context: RequestContext, *,
                  details: Mapping[str, Any] | None = None, if_changed: bool = False) -> Statement:
    """The audit record of a new token (`details` add to its data; `if_changed` as in `audit.record`)."""
    return audit.record(
        platform, issued.user_id, "token.created", f"Token created ({label or 'unlabelled'})", context,
        {"token_id": issued.token_id, "label": label, "abilities": list(issued.abilities), **(details or {})},
        if_changed=if_changed,
    )


async def sign_in(
    platform: Platform,
    email: str,
    *,
    method: str,
    context: RequestContext,
    name: str | None = None,
    picture: str | None = None,
    abilities: tuple[str, ...] = tokens.DEFAULT_ABILITIES,
    label: str = "",
) -> tuple[dict[str, Any], IssuedToken]:
    """A person proved who they are (`method`: google, local-owner): find or create the user, keep
    their profile current, and issue a new (fresh) token, all recorded in the audit log."""
    user = await ensure_user(platform, email, name=name)
    issued, row = new_token(platform, user["id"], abilities=abilities, label=label or method)
    statements = [insert_token(platform, row)]
    if (name and name != user.get("name")) or (picture and picture != user.get("picture")):
        updated_at = now_iso(platform)
        statements.append(
            platform.db.prepare(
                "UPDATE users SET name = COALESCE(?, name), picture = COALESCE(?, picture), updated_at = ? WHERE id = ?"
            ).bind(name, picture, updated_at, user["id"])
        )
        user = {**user, "name": name or user.get("name"), "picture": picture or user.get("picture"),
                "updated_at": updated_at}
    statements.append(
        audit.record(platform, user["id"], "auth.sign_in", f"Signed in with {method}", context, {"method": method})
    )
    statements.append(token_created(platform, issued, label or method, context))
    await platform.db.batch(statements)
    return user, issued


async def get_user(platform: Platform, user_id: str) -> dict[str, Any]:
    row = await platform.db.prepare("SELECT * FROM users WHERE id = ?").bind(user_id).first()
    if row is None:
        raise Unauthenticated("The bearer token is not valid.", code="invalid_token")
    return row


def user_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "email": row["email"], "name": row.get("name"), "picture": row.get("picture")}


def _token_view(row: Mapping[str, Any], current_token_id: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "label": row["label"],
        "abilities": json.loads(row["abilities"]),
        "created_at": row["created_at"],
        "authenticated_at": row["authenticated_at"],
        "last_used_at": row["last_used_at"],
        "expires_at": row["expires_at"],
        "current": row["id"] == current_token_id,
    }


async def tokens_page(
    platform: Platform, principal: Principal, *, limit: int, after: tuple[str, str] | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """The caller's live sessions (not revoked, not expired), newest first. Never the token."""
    bound, args = ("AND (created_at, id) < (?, ?)", list(after)) if after else ("", [])
    rows = (
        await platform.db.prepare(
            f"SELECT * FROM auth_tokens WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? {bound} "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        ).bind(principal.user_id, now_iso(platform), *args, limit + 1).all()
    ).results
    page, next_cursor = split_page(rows, limit, lambda r: (r["created_at"], r["id"]))
    return [_token_view(r, principal.token_id) for r in page], next_cursor


async def revoke_token(
    platform: Platform, user_id: str, token_id: str, *, context: RequestContext | None = None, reason: str = "revoked"
) -> bool:
    """Revoke one of the user's tokens; False when it is not theirs or already revoked."""
    statements = [
        platform.db.prepare(
            "UPDATE auth_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL"
        ).bind(now_iso(platform), token_id, user_id)
    ]
    if context is not None:
        statements.append(
            audit.record(
                platform, user_id, "token.revoked", f"Token {reason}", context,
                {"token_id": token_id, "reason": reason}, if_changed=True,
            )
        )
    results = await platform.db.batch(statements)
    return results[0].changes == 1


async def revoke_or_404(platform: Platform, principal: Principal, token_id: str, context: RequestContext) -> None:
    if not await revoke_token(platform, principal.user_id, token_id, context=context):
        raise NotFound("No such token.")


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def bootstrap_token_sql(
    email: str, *, abilities: tuple[str, ...], label: str, now: datetime, ttl_days: int
) -> tuple[str, str]:
    """A new token for `email` as SQL to run on a remote D1 (`wrangler d1 execute --file`), creating
    the user if needed. Returns (token, sql). For the first token of a fresh Cloudflare deployment,
    before any sign-in method exists; only the token's hash is in the SQL."""
    email = checked_email(email)
    token = _mint_token()
    millis = millis_of(now)
    user_id = make_id("usr", millis, secrets.token_bytes(ENTROPY_BYTES))
    token_id = make_id("tok", millis, secrets.token_bytes(ENTROPY_BYTES))
    stamp, expires = iso(now), iso(now + timedelta(days=ttl_days))
    q = _sql_literal
    sql = (
        f"INSERT INTO users (id, email, created_at, updated_at) VALUES ({q(user_id)}, {q(email)}, {q(stamp)}, {q(stamp)}) "
        "ON CONFLICT(email) DO NOTHING;\n"
        f"INSERT INTO auth_tokens ({TOKEN_COLUMNS}) "
        f"SELECT {q(token_id)}, id, {q(tokens.token_hash(token))}, {q(label)}, {q(json.dumps(list(abilities)))}, "
        f"{q(stamp)}, {q(stamp)}, {q(expires)} FROM users WHERE email = {q(email)};\n"
    )
    return token, sql
