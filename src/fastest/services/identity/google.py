"""Google sign-in: verify an ID token (RS256 only) against Google's published keys.

The JWKS comes through the `HttpClient` port from `settings.google_jwks_url` and is cached in KV for
as long as its `Cache-Control: max-age` allows. A token naming a key id the cached set lacks triggers
one refresh (Google rotates keys), at most once a minute, so unknown key ids cannot be used to make
us hammer the JWKS URL. Every rejection is the same 401 to the client; the reason goes to the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from fastest.domain import jwt
from fastest.errors import Unauthenticated, Unavailable
from fastest.platform import Platform
from fastest.ports import KV_MIN_TTL_SECONDS

log = logging.getLogger("fastest.auth")

MIN_REFRESH_SECONDS = 60
JWKS_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class GoogleIdentity:
    subject: str
    email: str
    name: str | None
    picture: str | None
    nonce: str | None = None  # the OpenID Connect nonce the sign-in request sent, if any


def _rejected(reason: str) -> Unauthenticated:
    log.info("google credential rejected: %s", reason)
    return Unauthenticated("The Google credential is not valid.", code="invalid_credential")


def _cache_key(platform: Platform) -> str:
    url_digest = hashlib.sha256(platform.settings.google_jwks_url.encode("utf-8")).hexdigest()[:16]
    return f"jwks:google:{url_digest}"


async def _cached_jwks(platform: Platform) -> dict[str, Any] | None:
    raw = await platform.kv.get(_cache_key(platform))
    if raw is None:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return None
    if float(document.get("expires_at", 0)) <= platform.clock.now().timestamp():
        return None  # KV may serve a value a little past its TTL; Cache-Control decides
    return document


async def _fetch_jwks(platform: Platform) -> dict[str, Any]:
    if platform.http is None:
        raise Unavailable("Outbound HTTP is not configured, so Google keys cannot be fetched.")
    try:
        response = await platform.http.request(
            "GET", platform.settings.google_jwks_url, headers={"Accept": "application/json"}, timeout=JWKS_TIMEOUT_SECONDS
        )
    except Exception as exc:  # network trouble: the client may retry
        log.warning("JWKS fetch failed: %s", type(exc).__name__)
        raise Unavailable("Google's signing keys could not be fetched; try again.") from exc
    if response.status != 200 or len(response.body) > MAX_JWKS_BYTES:
        log.warning("JWKS fetch answered %s", response.status)
        raise Unavailable("Google's signing keys could not be fetched; try again.")
    try:
        document = json.loads(response.body)
        keys = [k for k in document["keys"] if isinstance(k, dict)]
    except (ValueError, KeyError, TypeError) as exc:
        raise Unavailable("Google's signing keys could not be read; try again.") from exc
    now = platform.clock.now().timestamp()
    max_age = jwt.max_age_seconds(response.headers.get("cache-control"))
    cached = {"keys": keys, "fetched_at": now, "expires_at": now + (max_age or 0)}
    if max_age:
        await platform.kv.put(
            _cache_key(platform), json.dumps(cached), expiration_ttl=max(KV_MIN_TTL_SECONDS, max_age)
        )
    return cached


def _find_key(document: dict[str, Any] | None, kid: str) -> dict[str, Any] | None:
    for key in (document or {}).get("keys", []):
        if key.get("kid") == kid and key.get("kty") == "RSA" and key.get("alg", "RS256") == "RS256" and key.get("use", "sig") == "sig":
            return key
    return None


async def _key_for(platform: Platform, kid: str) -> dict[str, Any] | None:
    document = await _cached_jwks(platform)
    key = _find_key(document, kid)
    if key is not None:
        return key
    fetched_recently = document is not None and platform.clock.now().timestamp() - float(
        document.get("fetched_at", 0)
    ) < MIN_REFRESH_SECONDS
    if fetched_recently:
        return None
    return _find_key(await _fetch_jwks(platform), kid)  # one refresh for an unknown key id


async def verify_id_token(platform: Platform, credential: str) -> GoogleIdentity:
    """The identity in a valid Google ID token, or 401 `invalid_credential`."""
    audiences = platform.settings.google_audiences
    if not audiences:
        raise Unauthenticated(
            "Google sign-in is not configured on this server (FASTEST_GOOGLE_CLIENT_IDS).", code="invalid_credential"
        )
    if platform.signatures is None:
        raise Unavailable("Signature verification is not available on this runtime.")
    try:
        parsed = jwt.parse_compact(credential)
        kid = jwt.require_rs256(parsed.header)
    except jwt.InvalidToken as exc:
        raise _rejected(str(exc)) from exc
    key = await _key_for(platform, kid)
    if key is None:
        raise _rejected("unknown key id")
    if not await platform.signatures.verify_rs256(key, parsed.signing_input, parsed.signature):
        raise _rejected("bad signature")
    try:
        jwt.check_google_claims(parsed.claims, now=platform.clock.now(), audiences=audiences)
    except jwt.InvalidToken as exc:
        raise _rejected(str(exc)) from exc
    claims = parsed.claims
    name = claims["name"][:200] if isinstance(claims.get("name"), str) else None
    picture = claims.get("picture")
    if not (isinstance(picture, str) and picture.startswith("https://") and len(picture) <= 2048):
        picture = None
    nonce = claims.get("nonce") if isinstance(claims.get("nonce"), str) else None
    return GoogleIdentity(subject=claims["sub"], email=claims["email"], name=name, picture=picture, nonce=nonce)


async def user_for(platform: Platform, credential: str) -> dict[str, Any]:
    """The user a Google ID token signs in (created on first sign-in)."""
    from fastest.services.identity import accounts as identity

    person = await verify_id_token(platform, credential)
    return await identity.ensure_user(platform, person.email, name=person.name)
