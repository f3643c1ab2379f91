"""The OpenCode engine's pieces that need no OpenCode: which model and key it is given, the
configuration a server started here gets (offline, the key never on disk), and the checked-out
directory it works in (what is kept, what is left out, nothing outside it)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from fastest.config import Settings
from fastest.platform.ai import model_for
from fastest.platform.ai.opencode import KEY_VARIABLE, OpenCodeModel, model_of, opencode_config
from fastest.platform.local.opencode import seed_config_dir
from fastest.platform.local.workdir import LocalWorkdir
from fastest.services.ai.models import is_model, key_provider


def test_the_model_is_a_base_urls_or_one_of_opencodes_providers():
    assert model_of("qwen2.5-coder", "http://127.0.0.1:11434/v1") == OpenCodeModel("fastest", "qwen2.5-coder")
    assert model_of("anthropic/claude-sonnet-4-5", "") == OpenCodeModel("anthropic", "claude-sonnet-4-5")
    assert model_of("qwen2.5-coder", "") is None and model_of("", "http://x/v1") is None


@pytest.mark.parametrize(("base_url", "model", "provider"), [
    ("http://127.0.0.1:11434/v1", "qwen", "openai"), ("", "anthropic/claude-x", "anthropic"), ("", "", None),
])
def test_a_users_key_is_the_one_for_the_models_provider(base_url, model, provider):
    assert key_provider(Settings(ai_provider="opencode", ai_base_url=base_url, ai_model=model)) == provider
    assert key_provider(Settings(ai_provider="openai")) == "openai" and key_provider(Settings(ai_provider="builtin")) is None


def test_the_configuration_is_offline_and_names_the_key_without_holding_it():
    config = opencode_config(model_of("qwen", "http://127.0.0.1:8080/v1/"), base_url="http://127.0.0.1:8080/v1/", api_key="sk-secret")
    assert config["autoupdate"] is False and config["share"] == "disabled"
    assert config["model"] == config["small_model"] == "fastest/qwen"
    options = config["provider"]["fastest"]["options"]
    assert options == {"baseURL": "http://127.0.0.1:8080/v1", "apiKey": "{env:" + KEY_VARIABLE + "}"}
    assert "sk-secret" not in json.dumps(config)
    assert config["permission"]["bash"] == "ask" and config["permission"]["edit"] == "allow"
    own = opencode_config(model_of("anthropic/claude-x", ""), base_url="", api_key=None)
    assert "provider" not in own and own["model"] == "anthropic/claude-x"


def test_the_engine_hands_plain_completions_to_the_base_urls_model():
    with_server = model_for(Settings(ai_provider="opencode", ai_base_url="http://127.0.0.1:1/v1", ai_model="m"), http=object(), api_key="k")
    assert (with_server.provider, with_server.model, is_model(with_server)) == ("opencode", "fastest/m", True)
    assert with_server.secrets() == {KEY_VARIABLE: "k"} and with_server.config()["model"] == "fastest/m"
    alone = model_for(Settings(ai_provider="opencode", ai_model="anthropic/claude-x"), http=object())
    assert (alone.model, is_model(alone), alone.secrets()) == ("anthropic/claude-x", False, {})


def test_a_seeded_configuration_directory_records_the_plugin_opencode_would_install(tmp_path):
    seed_config_dir(tmp_path, {"autoupdate": False})
    lock = json.loads((tmp_path / "package-lock.json").read_text())
    assert json.loads((tmp_path / "package.json").read_text())["dependencies"] == lock["packages"][""]["dependencies"]
    assert (tmp_path / "node_modules").is_dir() and json.loads((tmp_path / "opencode.json").read_text()) == {"autoupdate": False}


def test_the_workdir_keeps_what_a_push_keeps_and_nothing_outside(tmp_path: Path):
    workdir = LocalWorkdir(tmp_path / "tree")

    async def scenario():
        await workdir.write("src/app.py", b"print('hi')\n", 0o644)
        await workdir.write("run.sh", b"#!/bin/sh\n", 0o755)
        for left_out in ("node_modules/x/index.js", ".git/HEAD", "src/__pycache__/app.pyc", "notes.pyc"):
            await workdir.write(left_out, b"ignored", 0o644)
        files = await workdir.scan()
        assert files == {"src/app.py": (hashlib.sha256(b"print('hi')\n").hexdigest(), 12, 0o644),
                         "run.sh": (hashlib.sha256(b"#!/bin/sh\n").hexdigest(), 10, 0o755)}
        assert not workdir.keeps("node_modules/a.js") and workdir.keeps("src/node_modules.py")
        assert await workdir.read("src/app.py") == b"print('hi')\n"
        await workdir.remove("run.sh")
        assert set(await workdir.scan()) == {"src/app.py"}
        (tmp_path / "tree" / "link").symlink_to(tmp_path)
        for escaping in ("../outside.txt", "link/outside.txt"):
            with pytest.raises(ValueError):
                await workdir.write(escaping, b"no", 0o644)
        assert not (tmp_path / "outside.txt").exists()

    asyncio.run(scenario())
