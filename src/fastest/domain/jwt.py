"""JSON Web Tokens as Google issues ID tokens: compact JWS, RS256 only. Pure parsing and claim checks.

The signature itself is checked by the `SignatureVerifier` port (a platform primitive); everything
around it — strict base64url, the header's `alg`, issuer, audience, times, verified email — is here,
without I/O, so each rejection is tested on its own.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Collection, Mapping

from fastest.domain.untrusted_text import Unparseable, parse_json

ALLOWED_ALGORITHM = "RS256"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CLOCK_SKEW = timedelta(minutes=5)
MAX_TOKEN_CHARS = 8192


class InvalidToken(ValueError):
    """Why a token is refused (for logs and tests; clients get one generic 401)."""


@dataclass(frozen=True, slots=True)
class CompactJws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes  # base64url(header) "." base64url(payload), as signed
    signature: bytes


def b64url_decode(text: str) -> bytes:
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text):
        raise InvalidToken("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("not base64url") from exc


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = parse_json(raw)
    except Unparseable as exc:
        raise InvalidToken(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidToken(f"{what} is not a JSON object")
    return value


def parse_compact(token: str) -> CompactJws:
    """Split and decode `header.payload.signature`; nothing is trusted yet."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("not a compact JWS")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a compact JWS")
    header = _json_object(b64url_decode(parts[0]), "header")
    claims = _json_object(b64url_decode(parts[1]), "payload")
    signature = b64url_decode(parts[2]) if parts[2] else b""
    return CompactJws(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def require_rs256(header: Mapping[str, Any]) -> str:
    """The key id to verify with. Only RS256 is accepted: `none`, HS256 (a public key used as an
    HMAC secret) and anything else are refused before any key is looked at."""
    if header.get("alg") != ALLOWED_ALGORITHM:
        raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
    if "crit" in header:
        raise InvalidToken("critical header parameters are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("no key id")
    return kid


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidToken(f"`{name}` is missing or not a number")
    return float(value)


def check_google_claims(
    claims: Mapping[str, Any], *, now: datetime, audiences: Collection[str], skew: timedelta = CLOCK_SKEW
) -> None:
    """Issuer, audience, expiry, issued-at (not in the future), and a verified email."""
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise InvalidToken("wrong issuer")
    aud = claims.get("aud")
    named = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a in audiences for a in named):
        raise InvalidToken("wrong audience")
    instant = now.timestamp()
    if _number(claims, "exp") <= instant - skew.total_seconds():
        raise InvalidToken("expired")
    if _number(claims, "iat") > instant + skew.total_seconds():
        raise InvalidToken("issued in the future")
    if "nbf" in claims and _number(claims, "nbf") > instant + skew.total_seconds():
        raise InvalidToken("not yet valid")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidToken("no subject")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise InvalidToken("no email")
    if claims.get("email_verified") not in (True, "true"):
        raise InvalidToken("email not verified")


def max_age_seconds(cache_control: str | None) -> int | None:
    """`max-age` of a Cache-Control header; None when absent or when the response must not be kept."""
    if not cache_control:
        return None
    directives = [d.strip().lower() for d in cache_control.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return None
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age":
            try:
                return max(0, int(value.strip().strip('"')))
            except ValueError:
                return None
    return None
