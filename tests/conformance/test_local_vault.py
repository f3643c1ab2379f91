"""The local vault: AES-GCM in the shared envelope, AAD binding, key rotation, the key file."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path

import pytest

from fastest.config import Settings
from fastest.platform import envelope
from fastest.platform.local import open_local_platform
from fastest.platform.local.vault import LocalVault, load_or_create_key_file
from fastest.ports import VaultError


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


def seal(vault: LocalVault, plaintext: str, owner: str = "usr_1", purpose: str = "env:API_KEY") -> str:
    return asyncio.run(vault.encrypt(plaintext, owner=owner, purpose=purpose))


def open_(vault: LocalVault, sealed: str, owner: str = "usr_1", purpose: str = "env:API_KEY") -> str:
    return asyncio.run(vault.decrypt(sealed, owner=owner, purpose=purpose))


def test_round_trip_in_the_shared_format() -> None:
    key = new_key()
    vault = LocalVault.from_base64(key)
    sealed = seal(vault, "s3cret ✓")
    version, key_id, _ = sealed.split(".", 2)
    assert version == "v1" and key_id == envelope.key_id_for(base64.b64decode(key))
    assert "s3cret" not in sealed
    assert open_(vault, sealed) == "s3cret ✓"
    assert seal(vault, "same") != seal(vault, "same")  # a fresh nonce every time


@pytest.mark.parametrize("owner, purpose", [("usr_2", "env:API_KEY"), ("usr_1", "env:OTHER")])
def test_a_value_moved_to_another_owner_or_purpose_does_not_open(owner: str, purpose: str) -> None:
    vault = LocalVault.from_base64(new_key())
    sealed = seal(vault, "secret")
    with pytest.raises(VaultError):
        open_(vault, sealed, owner=owner, purpose=purpose)


def test_tampering_and_garbage_are_refused() -> None:
    vault = LocalVault.from_base64(new_key())
    sealed = seal(vault, "secret")
    head, body = sealed.rsplit(".", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for bad in (f"{head}.{flipped}", "v1.abc", "v2." + sealed[3:], "", "v1.deadbeef.AAAA"):
        with pytest.raises(VaultError):
            open_(vault, bad)


def test_an_unknown_key_id_is_refused() -> None:
    sealed = seal(LocalVault.from_base64(new_key()), "secret")
    with pytest.raises(VaultError):
        open_(LocalVault.from_base64(new_key()), sealed)


def test_rotation_keeps_old_values_readable_and_seals_with_the_new_key() -> None:
    old, new = new_key(), new_key()
    before = seal(LocalVault.from_base64(old), "old secret")
    rotated = LocalVault.from_base64(new, previous=old)
    assert open_(rotated, before) == "old secret"
    after = seal(rotated, "new secret")
    assert after.split(".")[1] == rotated.current_key_id != before.split(".")[1]
    assert open_(LocalVault.from_base64(new), after) == "new secret"
    with pytest.raises(VaultError):
        open_(LocalVault.from_base64(new), before)  # the old key was dropped: old values are gone


def test_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        LocalVault.from_base64(base64.b64encode(os.urandom(16)).decode())
    with pytest.raises(ValueError):
        LocalVault.from_base64("not base64!")


def test_key_file_is_created_0600_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "data" / "vault.key"
    first = load_or_create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(first)) == 32
    assert load_or_create_key_file(path) == first
    assert load_or_create_key_file(path) == first


def test_an_empty_key_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    path.write_text("")
    with pytest.raises(ValueError):
        load_or_create_key_file(path)


def test_platform_uses_its_key_file_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = open_local_platform(data_dir, Settings(), env={}, session_factory=lambda n, s: None)
    try:
        sealed = asyncio.run(first.vault.encrypt("kept", owner="u", purpose="p"))
    finally:
        first.close()
    assert stat.S_IMODE((data_dir / "vault.key").stat().st_mode) == 0o600
    second = open_local_platform(data_dir, Settings(), env={}, session_factory=lambda n, s: None)
    try:
        assert asyncio.run(second.vault.decrypt(sealed, owner="u", purpose="p")) == "kept"
    finally:
        second.close()


def test_platform_prefers_the_environment_key(tmp_path: Path) -> None:
    old, current = new_key(), new_key()
    sealed_with_old = seal(LocalVault.from_base64(old), "from before")
    env = {"FASTEST_VAULT_KEY": current, "FASTEST_VAULT_PREVIOUS_KEYS": old}
    platform = open_local_platform(tmp_path / "data", Settings(), env=env, session_factory=lambda n, s: None)
    try:
        assert not (tmp_path / "data" / "vault.key").exists()
        assert open_(platform.vault, sealed_with_old) == "from before"  # type: ignore[arg-type]
        sealed = asyncio.run(platform.vault.encrypt("now", owner="u", purpose="p"))
        assert asyncio.run(LocalVault.from_base64(current).decrypt(sealed, owner="u", purpose="p")) == "now"
    finally:
        platform.close()
