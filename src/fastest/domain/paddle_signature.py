"""Paddle webhook signatures (`Paddle-Signature: ts=<unix seconds>;h1=<hex>[;h1=<hex>…]`).

`h1` is HMAC-SHA256, keyed with the notification destination's secret, of `ts + ":" + raw body`.
The raw bytes are what is signed: the check runs before the body is parsed, and nothing is decoded
or re-serialized on the way. During a secret rotation Paddle sends one `h1` per secret and we may
hold several secrets: any (secret, h1) pair matching is enough. The timestamp must lie within
`tolerance` seconds of now, in either direction (a replay of an old delivery, or a clock far ahead).

Pure functions: the caller supplies the current time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Sequence

DEFAULT_TOLERANCE_SECONDS = 5
MAX_HEADER_CHARS = 4096


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    timestamp: int
    signatures: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The verdict. `reason` is for the server's log only, never for the caller."""

    ok: bool
    reason: str


def parse(header: str | None) -> ParsedSignature | None:
    """The header's timestamp and every `h1`, or None when it is missing or malformed."""
    if not header or len(header) > MAX_HEADER_CHARS:
        return None
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return None
        name, value = name.strip(), value.strip()
        if name == "ts":
            if timestamp is not None or not value.isascii() or not value.isdigit() or len(value) > 12:
                return None
            timestamp = int(value)
        elif name == "h1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        return None
    return ParsedSignature(timestamp, tuple(signatures))


def expected_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex `h1` Paddle computes for this secret, timestamp and raw body."""
    return hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b":" + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """A `Paddle-Signature` header value, as Paddle would send it (tests, local tooling)."""
    return f"ts={timestamp};h1={expected_signature(secret, timestamp, body)}"


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> SignatureCheck:
    """Check a delivery: a well-formed header, a timestamp within `tolerance` of `now` (both
    directions), and one `h1` equal (constant-time) to the HMAC under one of `secrets`."""
    usable = [s for s in secrets if s]
    if not usable:
        return SignatureCheck(False, "no webhook secret is configured")
    parsed = parse(header)
    if parsed is None:
        return SignatureCheck(False, "missing or malformed Paddle-Signature header")
    if abs(now - parsed.timestamp) > max(0, tolerance):
        return SignatureCheck(False, "timestamp outside the tolerance")
    matched = False
    for secret in usable:
        expected = expected_signature(secret, parsed.timestamp, body).encode("ascii")
        for candidate in parsed.signatures:
            # Every pair is compared (no early exit), each in constant time.
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return SignatureCheck(True, "ok") if matched else SignatureCheck(False, "no h1 matches")


def secrets_from_setting(value: str) -> list[str]:
    """`FASTEST_PADDLE_WEBHOOK_SECRETS`: comma-separated, blanks ignored."""
    return [s.strip() for s in value.split(",") if s.strip()]
