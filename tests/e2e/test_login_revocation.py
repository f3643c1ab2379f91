"""`fastest login` revokes the token it replaces when that token was minted by a device login on the
same server (the config remembers where a saved token came from), and never a token given with
`--token` (it may be in use elsewhere). Real server and CLI processes; the approval is the bearer
route `POST /v1/oauth/device/authorize`, as a signed-in person's browser would call it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx

from tests.e2e.conftest import FASTEST, Cli, admin_token, running_server


def device_login(cli: Cli, base_url: str, approver: str, cwd: Path) -> str:
    """Run `fastest login` with the device flow, approve its code, return the saved token."""
    login = subprocess.Popen([*FASTEST, "login", "--server", base_url], env=cli.env, cwd=cwd,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in login.stdout:
            seen.append(line)
            match = re.search(r"user_code=([A-Z]{4}-[A-Z]{4})", line)
            if match:
                answer = httpx.post(f"{base_url}/v1/oauth/device/authorize", json={"user_code": match.group(1)},
                                    headers={"Authorization": f"Bearer {approver}"})
                assert answer.status_code == 200, answer.text
                break
        output, _ = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()
    assert login.returncode == 0, "".join(seen) + output
    return saved(cli)["token"]


def saved(cli: Cli) -> dict:
    return json.loads((Path(cli.env["FASTEST_CONFIG_DIR"]) / "config.json").read_text())


def works(base_url: str, token: str) -> bool:
    status = httpx.get(f"{base_url}/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code
    assert status in (200, 401)
    return status == 200


def test_login_revokes_the_device_token_it_replaces_and_only_that(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "config")
    env = {"FASTEST_DEVICE_POLL_INTERVAL_SECONDS": "1", "FASTEST_RATE_LIMIT_PER_MINUTE": "100000"}
    with running_server(tmp_path / "data", env) as (base_url, _):
        approver = admin_token(tmp_path / "data", "person@example.com")

        first = device_login(cli, base_url, approver, tmp_path)
        assert saved(cli)["source"] == "device" and works(base_url, first)

        second = device_login(cli, base_url, approver, tmp_path)  # a device token replaces a device token
        assert second != first and works(base_url, second)
        assert not works(base_url, first)

        given = admin_token(tmp_path / "data", "person@example.com")
        cli("login", "--server", base_url, "--token", given, cwd=tmp_path)  # a given token replaces a device one
        assert "source" not in saved(cli)
        assert not works(base_url, second) and works(base_url, given)

        third = device_login(cli, base_url, approver, tmp_path)  # a device token replaces a given one: kept
        assert works(base_url, third) and works(base_url, given)

        # Logging in to another server forgets this server's token without sending it anywhere else.
        with running_server(tmp_path / "other", env) as (other_url, _):
            other = admin_token(tmp_path / "other", "person@example.com")
            cli("login", "--server", other_url, "--token", other, cwd=tmp_path)
        assert works(base_url, third)
