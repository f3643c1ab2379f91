"""The sealed-value format shared by both Vault adapters, so secrets move between runtimes.

A sealed value is `v1.<key_id>.<base64url(nonce ‖ ciphertext ‖ tag)>` with a 96-bit random nonce.
The associated data binds the owner and the purpose (`owner \\x00 purpose`): a ciphertext copied to
another row, project or user fails to open. The key id (first 8 hex digits of SHA-256 of the key)
lets an old key keep opening old values while new values use the current key.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from fastest.ports import VaultError

VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    payload: bytes  # nonce ‖ ciphertext ‖ tag

    @property
    def nonce(self) -> bytes:
        return self.payload[:NONCE_BYTES]

    @property
    def ciphertext_and_tag(self) -> bytes:
        return self.payload[NONCE_BYTES:]


def key_id_for(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def associated_data(owner: str, purpose: str) -> bytes:
    return owner.encode("utf-8") + b"\x00" + purpose.encode("utf-8")


def encode(key_id: str, nonce: bytes, ciphertext_and_tag: bytes) -> str:
    body = base64.urlsafe_b64encode(nonce + ciphertext_and_tag).rstrip(b"=").decode("ascii")
    return f"{VERSION}.{key_id}.{body}"


def decode(sealed: str) -> Sealed:
    try:
        version, key_id, body = sealed.split(".", 2)
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError) as exc:
        raise VaultError("malformed sealed value") from exc
    if version != VERSION or len(payload) < NONCE_BYTES + 16:
        raise VaultError("malformed sealed value")
    return Sealed(key_id=key_id, payload=payload)


def parse_keys(current: str, previous: str = "") -> tuple[str, dict[str, bytes]]:
    """Parse base64 keys (current, then comma-separated previous ones) into (current id, id → key)."""
    keys: dict[str, bytes] = {}
    current_id = ""
    for index, text in enumerate([current, *[p for p in previous.split(",") if p.strip()]]):
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except ValueError as exc:
            raise ValueError("vault keys must be base64") from exc
        if len(key) != KEY_BYTES:
            raise ValueError("vault keys must be 32 bytes (AES-256)")
        kid = key_id_for(key)
        keys[kid] = key
        if index == 0:
            current_id = kid
    return current_id, keys
