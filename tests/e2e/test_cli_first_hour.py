"""What a new user meets in their first hour with the `fastest` command, each as they would meet it:
the real CLI against a real server, both as processes."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from fastest.cli.client import ApiClient, ApiError
from tests.e2e.conftest import Cli, admin_token, write


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_to_this_machine_is_said_at_once():
    """Nothing listens on a loopback port: asking again will not change that, so no retries."""
    waits: list[float] = []
    api = ApiClient(f"http://127.0.0.1:{closed_port()}", None, sleep=waits.append)
    try:
        api.get_json("/v1/auth/me")
    except ApiError as exc:
        assert exc.status == 0 and "connection refused" in exc.message and "fastest serve" in exc.message
    else:
        raise AssertionError("no error")
    assert waits == [] and api.requests_sent == 1


def test_a_wrong_port_fails_with_one_line(cli: Cli, tmp_path: Path):
    done = cli("login", "--server", f"http://127.0.0.1:{closed_port()}", "--token", "fst_x", cwd=tmp_path, check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "connection refused" in done.stderr


def test_a_server_url_with_a_path_says_the_url_must_be_the_root(server, cli: Cli, tmp_path: Path):
    base_url, data_dir = server
    token = admin_token(data_dir, "first@example.com")
    done = cli("login", "--server", f"{base_url}/api", "--token", token, cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert "the server URL is the server's root" in done.stderr and f"(e.g. {base_url})" in done.stderr
    assert not (tmp_path / "config" / "config.json").exists()


def test_login_with_a_token_says_who_you_are(server, cli: Cli, tmp_path: Path):
    base_url, data_dir = server
    done = cli("login", "--server", base_url, "--token", admin_token(data_dir, "first@example.com"), cwd=tmp_path)
    assert done.stdout.startswith(f"logged in to {base_url} as first@example.com ")


def test_status_with_a_rejected_token_gives_the_login_hint(logged_in: Cli, server, tmp_path: Path):
    base_url, _ = server
    folder = tmp_path / "app"
    write(folder / "a.txt", "a\n")
    logged_in("init", cwd=folder)
    logged_in("push", cwd=folder)
    token = (Path(logged_in.env["FASTEST_CONFIG_DIR"]) / "config.json").read_text()
    token = token.split('"token": "')[1].split('"')[0]
    assert httpx.post(f"{base_url}/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    done = logged_in("status", cwd=folder, check=False)
    assert done.returncode == 1 and "run fastest login" in done.stderr and done.stdout == ""


def test_atlas_index_prints_no_empty_line(logged_in: Cli, tmp_path: Path):
    folder = tmp_path / "app"
    write(folder / "app.py", "def main():\n    return 1\n")
    logged_in("init", cwd=folder)
    logged_in("push", cwd=folder)
    done = logged_in("atlas", "index", cwd=folder)
    assert done.stdout.startswith("indexed snp_") and done.stderr == ""
