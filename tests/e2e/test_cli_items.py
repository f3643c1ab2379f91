"""`fastest items`, `items fix`, `items apply` through the real CLI and `fastest serve`, with a
loopback model that fixes a committed key: the run is driven by the server's alarm scheduler, the
diff is shown, and applying updates the folder as `fastest sync` does."""

from __future__ import annotations

from pathlib import Path

from tests.api.items_model import ScriptedModel
from tests.api.test_action_item_runs import FIXED, fixing_model
from tests.api.test_action_items import LEAKY, TREE
from tests.e2e.conftest import Cli, admin_token, running_server, write


def test_items_fix_and_apply_update_the_folder(tmp_path: Path):
    with ScriptedModel(fixing_model()) as model:
        env = {"FASTEST_RATE_LIMIT_PER_MINUTE": "100000", "FASTEST_AI_RATE_LIMIT_PER_MINUTE": "1000",
               "FASTEST_AI_PROVIDER": "openai", "FASTEST_AI_BASE_URL": model.base_url, "FASTEST_AI_MODEL": "test-model",
               "FASTEST_ACTION_ITEM_RUN_RETRY_SECONDS": "0"}
        with running_server(tmp_path / "data", env) as (base_url, _):
            cli = Cli(tmp_path / "config")
            cli("login", "--server", base_url, "--token", admin_token(tmp_path / "data", "cli@example.com"), cwd=tmp_path)
            folder = tmp_path / "web"
            for path, content in TREE.items():
                write(folder / path, content)
            cli.json("init", "--project", "web", cwd=folder)
            cli("push", cwd=folder)

            listed = cli("items", cwd=folder).stdout
            assert "critical" in listed and "committed secret" in listed
            item = cli.json("items", cwd=folder)["items"][0]
            assert item["type"] == "secrets"

            fixed = cli("items", "fix", item["id"], cwd=folder)
            assert "ready" in fixed.stdout and "diff --git a/config/settings.py b/config/settings.py" in fixed.stdout
            run_id = fixed.stdout.split("fastest items apply ")[-1].strip()
            assert (folder / "config/settings.py").read_bytes() == LEAKY  # nothing changed before apply

            applied = cli.json("items", "apply", run_id, cwd=folder)
            assert applied["files_written"] == 1 and applied["merged"] is False
            assert (folder / "config/settings.py").read_bytes() == FIXED
            assert not [i for i in cli.json("items", cwd=folder)["items"] if i["type"] == "secrets"]
            status = cli("status", cwd=folder).stdout
            assert "config/settings.py" not in status  # the folder matches the new head


def test_a_run_survives_the_server_being_killed_mid_run(tmp_path: Path):
    """SIGKILL `fastest serve` while the model is answering the run's first attempt; the restarted
    server fires the run's alarm again (it never completed) and the run finishes."""
    import time

    import httpx

    with ScriptedModel(fixing_model()) as model:
        model.hold.set()
        env = {"FASTEST_RATE_LIMIT_PER_MINUTE": "100000", "FASTEST_AI_RATE_LIMIT_PER_MINUTE": "1000",
               "FASTEST_AI_PROVIDER": "openai", "FASTEST_AI_BASE_URL": model.base_url, "FASTEST_AI_MODEL": "test-model",
               "FASTEST_ACTION_ITEM_RUN_RETRY_SECONDS": "0"}
        data = tmp_path / "data"
        cli = Cli(tmp_path / "config")
        folder = tmp_path / "web"
        for path, content in TREE.items():
            write(folder / path, content)
        token = admin_token(data, "cli@example.com")
        with running_server(data, env) as (base_url, process):
            cli("login", "--server", base_url, "--token", token, cwd=tmp_path)
            cli.json("init", "--project", "web", cwd=folder)
            cli("push", cwd=folder)
            item = cli.json("items", cwd=folder)["items"][0]
            run_id = cli.json("items", "fix", item["id"], "--no-follow", cwd=folder)["run"]["id"]
            deadline = time.monotonic() + 20
            while not model.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert model.requests, "the run never called the model"
            process.kill()
            process.wait()
        model.hold.clear()
        model.release.set()
        with running_server(data, env) as (base_url, _):
            headers = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                run = httpx.get(f"{base_url}/v1/action-items/runs/{run_id}", headers=headers).json()["run"]
                if run["status"] in ("ready", "failed"):
                    break
                time.sleep(0.2)
            assert run["status"] == "ready", run
            assert run["attempt_count"] == 2
