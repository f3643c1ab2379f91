"""`Vault` on WebCrypto: AES-256-GCM in the sealed-value format shared with the local vault.

The format, the associated data (owner + purpose) and the key parsing are `fastest.platform.envelope`,
so a value sealed by either runtime opens on the other. Only the AES-GCM primitive differs: here it
is `crypto.subtle` (the `cryptography` package does not exist on Workers). `WebCryptoAesGcm` is the
only code that touches it, and it is injectable, so the vault logic runs under CPython in tests.

Keys come from the Worker secrets `FASTEST_VAULT_KEY` (base64 of 32 bytes) and optionally
`FASTEST_VAULT_PREVIOUS_KEYS` (comma-separated): new values use the current key, old values open
with whichever key id they carry.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Protocol

from fastest.platform import envelope
from fastest.ports import VaultError

# 128-bit authentication tag, appended to the ciphertext (what WebCrypto and AESGCM both produce).
TAG_BITS = 128


class AesGcm(Protocol):
    """The AES-GCM primitive: `seal` → ciphertext ‖ tag; `open` raises on any failure."""

    async def seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes: ...

    async def open(self, key: bytes, nonce: bytes, ciphertext_and_tag: bytes, aad: bytes) -> bytes: ...


def _js_bytes(data: bytes) -> Any:
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    return to_js(data)  # a Python buffer becomes a Uint8Array (a copy)


def _js_object(mapping: dict[str, Any]) -> Any:
    from js import Object  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    return to_js(mapping, dict_converter=Object.fromEntries)


class WebCryptoAesGcm:
    """AES-GCM through `crypto.subtle`. Imported keys are kept (one per vault key: bounded)."""

    def __init__(self) -> None:
        self._keys: dict[bytes, Any] = {}

    async def _crypto_key(self, key: bytes) -> Any:
        if key not in self._keys:
            from js import crypto  # type: ignore[import-not-found]
            from pyodide.ffi import to_js  # type: ignore[import-not-found]

            self._keys[key] = await crypto.subtle.importKey(
                "raw", _js_bytes(key), "AES-GCM", False, to_js(["encrypt", "decrypt"])
            )
        return self._keys[key]

    def _params(self, nonce: bytes, aad: bytes) -> Any:
        return _js_object(
            {"name": "AES-GCM", "iv": _js_bytes(nonce), "additionalData": _js_bytes(aad), "tagLength": TAG_BITS}
        )

    async def seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        from js import crypto  # type: ignore[import-not-found]

        result = await crypto.subtle.encrypt(self._params(nonce, aad), await self._crypto_key(key), _js_bytes(plaintext))
        return result.to_bytes()

    async def open(self, key: bytes, nonce: bytes, ciphertext_and_tag: bytes, aad: bytes) -> bytes:
        from js import crypto  # type: ignore[import-not-found]

        result = await crypto.subtle.decrypt(
            self._params(nonce, aad), await self._crypto_key(key), _js_bytes(ciphertext_and_tag)
        )
        return result.to_bytes()


class WebCryptoVault:
    """`Vault` with key ids for rotation; the cipher and the nonce source are injectable."""

    def __init__(
        self,
        current_key: str,
        previous_keys: str = "",
        *,
        cipher: AesGcm | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        # Malformed keys fail here, when the platform is built, not on the first secret.
        self._current_id, self._keys = envelope.parse_keys(current_key, previous_keys)
        self._cipher = cipher or WebCryptoAesGcm()
        self._random_bytes = random_bytes

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    async def encrypt(self, plaintext: str, *, owner: str, purpose: str) -> str:
        nonce = self._random_bytes(envelope.NONCE_BYTES)  # per call: never at import time
        sealed = await self._cipher.seal(
            self._keys[self._current_id],
            nonce,
            plaintext.encode("utf-8"),
            envelope.associated_data(owner, purpose),
        )
        return envelope.encode(self._current_id, nonce, sealed)

    async def decrypt(self, ciphertext: str, *, owner: str, purpose: str) -> str:
        sealed = envelope.decode(ciphertext)
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise VaultError("sealed with an unknown key")
        try:
            plaintext = await self._cipher.open(
                key, sealed.nonce, sealed.ciphertext_and_tag, envelope.associated_data(owner, purpose)
            )
            return plaintext.decode("utf-8")
        except Exception as exc:  # wrong owner/purpose, tampered, or not UTF-8: one answer, no detail
            raise VaultError("sealed value could not be opened") from exc


class UnconfiguredVault:
    """Stands in when `FASTEST_VAULT_KEY` is not set: everything else works, secrets do not."""

    async def encrypt(self, plaintext: str, *, owner: str, purpose: str) -> str:
        raise VaultError("the vault key is not configured (secret FASTEST_VAULT_KEY)")

    async def decrypt(self, ciphertext: str, *, owner: str, purpose: str) -> str:
        raise VaultError("the vault key is not configured (secret FASTEST_VAULT_KEY)")
