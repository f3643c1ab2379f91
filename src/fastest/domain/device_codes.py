"""RFC 8628 codes: the device code the CLI keeps, and the user code a person types.

User codes are 8 letters from `BCDFGHJKLMNPQRSTVWXZ` (no vowels, so no words; no look-alike digits),
shown as `XXXX-XXXX` and matched case- and dash-insensitively. 20^8 ≈ 2.6 × 10^10 codes, live for 15
minutes, with guessing rate-limited. Device codes carry 32 random bytes and are stored hashed.
"""

from __future__ import annotations

import base64
import hashlib

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
DEVICE_CODE_BYTES = 32
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP_SECONDS = 5


def user_code_from(random_bytes: bytes) -> str:
    """A normalised user code from random bytes (rejection sampling: 240 = 12 × 20, so no bias)."""
    chars = []
    for byte in random_bytes:
        if byte < 240:
            chars.append(USER_CODE_ALPHABET[byte % len(USER_CODE_ALPHABET)])
            if len(chars) == USER_CODE_LENGTH:
                return "".join(chars)
    raise ValueError("not enough random bytes for a user code")


def normalise_user_code(text: str) -> str | None:
    """`bcdf-ghjk`, ` BCDFGHJK ` → `BCDFGHJK`; None when it cannot be a user code."""
    if not isinstance(text, str) or len(text) > 32:
        return None
    cleaned = "".join(c for c in text.upper() if c not in "- \t")
    if len(cleaned) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in cleaned):
        return None
    return cleaned


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def device_code_from(random_bytes: bytes) -> str:
    if len(random_bytes) < DEVICE_CODE_BYTES:
        raise ValueError(f"a device code needs at least {DEVICE_CODE_BYTES} random bytes")
    return base64.urlsafe_b64encode(random_bytes).rstrip(b"=").decode("ascii")


def device_code_hash(device_code: str) -> str:
    return hashlib.sha256(device_code.encode("utf-8")).hexdigest()
