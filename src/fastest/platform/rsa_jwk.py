"""Which RSA public keys (as JWKs) the signature verifiers accept, shared by both, so an ID token
signed with a weak key is refused on the Worker (WebCrypto) as it is locally (`cryptography`):
WebCrypto itself imports RSA keys of any size.
"""

from __future__ import annotations

import base64
from typing import Any, Mapping

MIN_RSA_BITS = 2048


def b64url_int(text: Any) -> int:
    """A JWK integer member (`n`, `e`): big-endian bytes, base64url without padding."""
    if not isinstance(text, str) or not text:
        raise ValueError("not a base64url string")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return int.from_bytes(raw, "big")


def modulus_bits(jwk: Mapping[str, Any]) -> int:
    """The key size: the bit length of the modulus `n` (ValueError when `n` is not one)."""
    return b64url_int(jwk.get("n")).bit_length()


def usable_rsa_jwk(jwk: Mapping[str, Any]) -> bool:
    """An RSA key of at least MIN_RSA_BITS bits; anything unreadable is not usable."""
    if jwk.get("kty") != "RSA":
        return False
    try:
        return modulus_bits(jwk) >= MIN_RSA_BITS
    except (ValueError, TypeError):
        return False
