"""`SignatureVerifier` on the local runtime: RSA with `cryptography` (the Worker uses WebCrypto)."""

from __future__ import annotations

import base64
from typing import Any, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MIN_RSA_BITS = 2048


def _b64url_int(text: Any) -> int:
    if not isinstance(text, str):
        raise ValueError("not a base64url string")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return int.from_bytes(raw, "big")


class CryptographySignatureVerifier:
    async def verify_rs256(self, jwk: Mapping[str, Any], message: bytes, signature: bytes) -> bool:
        try:
            if jwk.get("kty") != "RSA":
                return False
            public_key = rsa.RSAPublicNumbers(_b64url_int(jwk.get("e")), _b64url_int(jwk.get("n"))).public_key()
            if public_key.key_size < MIN_RSA_BITS:
                return False
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            return True
        except (InvalidSignature, ValueError, TypeError):
            return False
