"""The `nonce` of the device page's Google sign-in (OpenID Connect, `response_mode=form_post`).

Google posts the ID token to `/device/google` from its own site, so no `SameSite` cookie of ours
comes with it; the binding is server state instead. Each "Sign in with Google" link the page
renders carries a fresh random nonce, stored here only as its SHA-256 and bound to the device code
the page shows. Google copies the nonce into the ID token. Then:

- the callback (`check`) shows the confirmation only for a token whose nonce we issued, for this
  code, and not yet spent;
- the approve/deny post (`spend`) checks it again and spends it, once (a conditional DELETE).

An ID token minted for another request (another relying party's flow, an earlier sign-in, a
request for another code) has another nonce, or none, and is refused. Rows die with their device
code (ON DELETE CASCADE) and expired ones are dropped whenever a new one is written.
"""

from __future__ import annotations

import hashlib
import secrets

from fastest.domain import device_codes
from fastest.domain.ids import iso
from fastest.errors import Unauthenticated
from fastest.platform import Platform

NONCE_BYTES = 24


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("utf-8")).hexdigest()


def _refused() -> Unauthenticated:
    return Unauthenticated(
        "This Google sign-in was not started from this page for this code. Press \"Sign in with Google\" again.",
        code="invalid_credential",
    )


async def issue(platform: Platform, user_code: str) -> str:
    """A fresh nonce for a Google link on the page of a pending `user_code` (display or typed form)."""
    code = device_codes.normalise_user_code(user_code) or ""
    nonce = secrets.token_urlsafe(NONCE_BYTES)
    now = iso(platform.clock.now())
    await platform.db.batch(
        [
            platform.db.prepare("DELETE FROM device_google_nonces WHERE expires_at <= ?").bind(now),
            platform.db.prepare(
                "INSERT INTO device_google_nonces (nonce_hash, device_code_id, created_at, expires_at) "
                "SELECT ?, id, ?, expires_at FROM device_codes WHERE user_code = ? AND status = 'pending'"
            ).bind(_hash(nonce), now, code),
        ]
    )
    return nonce


def _matching(platform: Platform, nonce: str | None, user_code: str, sql_head: str):
    code = device_codes.normalise_user_code(user_code) or ""
    return platform.db.prepare(
        f"{sql_head} WHERE nonce_hash = ? AND expires_at > ? "
        "AND device_code_id = (SELECT id FROM device_codes WHERE user_code = ?)"
    ).bind(_hash(nonce or ""), iso(platform.clock.now()), code)


async def check(platform: Platform, nonce: str | None, user_code: str) -> None:
    """401 `invalid_credential` unless `nonce` was issued for `user_code`, is live and unspent."""
    if not nonce:
        raise _refused()
    if await _matching(platform, nonce, user_code, "SELECT 1 AS ok FROM device_google_nonces").first() is None:
        raise _refused()


async def spend(platform: Platform, nonce: str | None, user_code: str) -> None:
    """`check`, and spend the nonce: a second use of the same ID token is refused."""
    if not nonce:
        raise _refused()
    result = await _matching(platform, nonce, user_code, "DELETE FROM device_google_nonces").run()
    if result.changes != 1:
        raise _refused()
