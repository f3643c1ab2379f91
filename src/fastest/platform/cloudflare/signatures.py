"""`SignatureVerifier` on Workers: RSASSA-PKCS1-v1_5 / SHA-256 through `crypto.subtle`.

The `cryptography` package does not import on Python Workers (cloudflare/workers-py#271), so ID
token signatures are checked by WebCrypto, given the JWK as published. Imported keys are kept per
(n, e), bounded by the handful of keys a JWKS holds.
"""

from __future__ import annotations

from typing import Any, Mapping

from fastest.platform.rsa_jwk import usable_rsa_jwk

_ALGORITHM = {"name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256"}
MAX_CACHED_KEYS = 16


class WebCryptoSignatureVerifier:
    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], Any] = {}

    async def _key(self, jwk: Mapping[str, Any]) -> Any:
        from js import Object, crypto  # type: ignore[import-not-found]
        from pyodide.ffi import to_js  # type: ignore[import-not-found]

        cache_key = (str(jwk.get("n")), str(jwk.get("e")))
        if cache_key not in self._keys:
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.clear()
            plain = {"kty": "RSA", "n": cache_key[0], "e": cache_key[1], "alg": "RS256", "ext": True}
            self._keys[cache_key] = await crypto.subtle.importKey(
                "jwk",
                to_js(plain, dict_converter=Object.fromEntries),
                to_js(_ALGORITHM, dict_converter=Object.fromEntries),
                False,
                to_js(["verify"]),
            )
        return self._keys[cache_key]

    async def verify_rs256(self, jwk: Mapping[str, Any], message: bytes, signature: bytes) -> bool:
        # WebCrypto imports RSA keys of any size: refuse weak ones first, as the local verifier does.
        if not usable_rsa_jwk(jwk):
            return False
        from js import crypto  # type: ignore[import-not-found]
        from pyodide.ffi import to_js  # type: ignore[import-not-found]

        try:
            key = await self._key(jwk)
            return bool(await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, to_js(signature), to_js(message)))
        except Exception:  # an unusable key or signature: one answer, no detail
            return False
