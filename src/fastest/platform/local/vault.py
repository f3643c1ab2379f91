"""The Vault on the local runtime: AES-256-GCM from `cryptography`, in the shared sealed format.

The format (`fastest.platform.envelope`) is the one the Worker's WebCrypto vault writes, so a database
moved between runtimes keeps its secrets readable given the same keys. The key comes from
`FASTEST_VAULT_KEY` (+ `FASTEST_VAULT_PREVIOUS_KEYS` for rotation) or, for a self-contained local
install, from a key file created on first start with owner-only permissions.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fastest.platform import envelope
from fastest.ports import VaultError


class LocalVault:
    """Seals with the current key; opens with any known key, chosen by the key id in the value."""

    def __init__(self, current_key_id: str, keys: Mapping[str, bytes]) -> None:
        if current_key_id not in keys:
            raise ValueError("the current vault key is not among the keys")
        for key in keys.values():
            if len(key) != envelope.KEY_BYTES:
                raise ValueError("vault keys must be 32 bytes (AES-256)")
        self._current_key_id = current_key_id
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}

    @classmethod
    def from_base64(cls, current: str, previous: str = "") -> LocalVault:
        """Build from base64 keys as found in `FASTEST_VAULT_KEY` / `FASTEST_VAULT_PREVIOUS_KEYS`."""
        current_id, keys = envelope.parse_keys(current, previous)
        return cls(current_id, keys)

    @property
    def current_key_id(self) -> str:
        return self._current_key_id

    async def encrypt(self, plaintext: str, *, owner: str, purpose: str) -> str:
        nonce = secrets.token_bytes(envelope.NONCE_BYTES)  # 96-bit random nonce, never reused by design
        sealed = self._ciphers[self._current_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), envelope.associated_data(owner, purpose)
        )
        return envelope.encode(self._current_key_id, nonce, sealed)

    async def decrypt(self, ciphertext: str, *, owner: str, purpose: str) -> str:
        sealed = envelope.decode(ciphertext)
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise VaultError("sealed with an unknown key")
        try:
            plaintext = cipher.decrypt(
                sealed.nonce, sealed.ciphertext_and_tag, envelope.associated_data(owner, purpose)
            )
        except InvalidTag as exc:
            # Wrong owner/purpose and tampering are indistinguishable by design: say neither.
            raise VaultError("sealed value could not be opened") from exc
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VaultError("sealed value could not be opened") from exc


def load_or_create_key_file(path: Path) -> str:
    """Return the base64 vault key stored at `path`, creating a random one (mode 0600) on first use.

    Created with O_CREAT | O_EXCL and mode 0600 in one call, so the key is never readable by others,
    not even for a moment, and two processes starting at once cannot both write a different key:
    the loser of the race reads the winner's key.
    """
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_text = base64.b64encode(secrets.token_bytes(envelope.KEY_BYTES)).decode("ascii")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as key_file:
            key_file.write(key_text + "\n")
            key_file.flush()
            os.fsync(key_file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return key_text


def _read_key_file(path: Path) -> str:
    text = path.read_text(encoding="ascii").strip()
    if not text:
        # The creator may be between open and write; an empty file is never a valid key.
        raise ValueError(f"vault key file {path} is empty")
    envelope.parse_keys(text)  # validate now: a damaged key file must stop the start, loudly
    return text
