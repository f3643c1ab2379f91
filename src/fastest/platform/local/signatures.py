"""`SignatureVerifier` on the local runtime: RSA with `cryptography` (the Worker uses WebCrypto)."""

from __future__ import annotations

from typing import Any, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fastest.platform.rsa_jwk import b64url_int, usable_rsa_jwk


class CryptographySignatureVerifier:
    async def verify_rs256(self, jwk: Mapping[str, Any], message: bytes, signature: bytes) -> bool:
        try:
            if not usable_rsa_jwk(jwk):  # an RSA key of at least 2048 bits, as on the Worker
                return False
            public_key = rsa.RSAPublicNumbers(b64url_int(jwk.get("e")), b64url_int(jwk.get("n"))).public_key()
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            return True
        except (InvalidSignature, ValueError, TypeError):
            return False
