"""The CLI config remembers where a saved token came from, and which saved token a login replaces."""

from __future__ import annotations

import json
import stat

from fastest.cli import config
from fastest.cli.config import Credentials


def test_the_source_round_trips_and_old_files_still_load(tmp_path) -> None:
    env = {"FASTEST_CONFIG_DIR": str(tmp_path / "c")}
    path = config.save(env, Credentials("http://127.0.0.1:8787", "fst_a", source="device"))
    assert json.loads(path.read_text())["source"] == "device"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load_saved(env) == Credentials("http://127.0.0.1:8787", "fst_a", "device")
    path.write_text(json.dumps({"server": "http://127.0.0.1:8787", "token": "fst_b"}))  # before this field
    assert config.load_saved(env) == Credentials("http://127.0.0.1:8787", "fst_b", None)


def test_only_a_device_token_of_the_same_server_is_replaced(tmp_path) -> None:
    env = {"FASTEST_CONFIG_DIR": str(tmp_path / "c")}
    assert config.replaced_device_token(env, "http://a", "fst_new") is None  # nothing saved
    config.save(env, Credentials("http://a:1/", "fst_old", source="device"))
    assert config.replaced_device_token(env, "http://a:1", "fst_new") == "fst_old"
    assert config.replaced_device_token(env, "http://b:1", "fst_new") is None  # another server
    assert config.replaced_device_token(env, "http://a:1", "fst_old") is None  # the same token again
    config.save(env, Credentials("http://a:1", "fst_old"))
    assert config.replaced_device_token(env, "http://a:1", "fst_new") is None  # given with --token
    (tmp_path / "c" / "config.json").write_text("{not json")
    assert config.replaced_device_token(env, "http://a:1", "fst_new") is None  # unreadable: leave it
