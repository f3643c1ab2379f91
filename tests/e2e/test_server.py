"""The real `fastest` executable: `serve` on a free port, `admin token`, calls over HTTP, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

FASTEST = [sys.executable, "-m", "fastest.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(base_url: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{process.stdout.read()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not become healthy")


@pytest.fixture
def server(tmp_path: Path):
    data_dir = tmp_path / "data"
    port = free_port()
    env = {**os.environ, "FASTEST_RATE_LIMIT_PER_MINUTE": "1000"}
    process = subprocess.Popen(
        [*FASTEST, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process)
        yield base_url, data_dir, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def admin_token(data_dir: Path, email: str, *abilities: str) -> str:
    command = [*FASTEST, "admin", "token", "--email", email, "--data-dir", str(data_dir)]
    if abilities:
        command += ["--abilities", *abilities]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    token = done.stdout.strip()
    assert token.startswith("fst_")
    return token


def test_serve_migrates_creates_vault_key_and_serves_the_api(server):
    base_url, data_dir, _ = server
    key_file = data_dir / "vault.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with sqlite3.connect(data_dir / "d1.sqlite") as db:
        applied = [name for (name,) in db.execute("SELECT name FROM d1_migrations ORDER BY id")]
    expected = sorted(p.name for p in (Path(__file__).parents[2] / "migrations").glob("*.sql"))
    assert applied == expected

    token = admin_token(data_dir, "dev@example.com")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers) as client:
        created = client.post("/v1/projects", json={"name": "e2e"})
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"].startswith("req_")
        listed = client.get("/v1/projects").json()["projects"]
        assert [p["name"] for p in listed] == ["e2e"]
        missing = client.get("/v1/projects/prj_00000000000000000000000000")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert client.get("/health?deep=1").json()["status"] == "ok"


def test_admin_token_abilities_are_honoured(server):
    base_url, data_dir, _ = server
    token = admin_token(data_dir, "reader@example.com", "projects:read")
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/v1/projects").status_code == 200
        assert client.post("/v1/projects", json={"name": "nope"}).status_code == 403


def test_admin_token_rejects_unknown_abilities(tmp_path):
    done = subprocess.run(
        [*FASTEST, "admin", "token", "--email", "x@example.com", "--abilities", "root", "--data-dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert done.returncode == 2 and "unknown ability" in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_shuts_down_cleanly_on_signals(server, signum):
    _, data_dir, process = server
    process.send_signal(signum)
    assert process.wait(timeout=15) == 0
    # The vault key and database survive for the next start.
    assert (data_dir / "vault.key").exists() and (data_dir / "d1.sqlite").exists()


def test_restart_keeps_state_and_the_same_vault_key(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    for attempt in range(2):
        process = subprocess.Popen(
            [*FASTEST, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}", process)
            if attempt == 0:
                token = admin_token(data_dir, "keep@example.com")
                key = (data_dir / "vault.key").read_bytes()
                headers = {"Authorization": f"Bearer {token}"}
                project = httpx.post(f"http://127.0.0.1:{port}/v1/projects", headers=headers, json={"name": "kept"}).json()["project"]
                httpx.post(
                    f"http://127.0.0.1:{port}/v1/projects/{project['id']}/env-vars", headers=headers,
                    json={"key": "S", "value": "survives", "is_secret": True},
                )
            else:
                assert (data_dir / "vault.key").read_bytes() == key
                names = [p["name"] for p in httpx.get(f"http://127.0.0.1:{port}/v1/projects", headers=headers).json()["projects"]]
                assert names == ["kept"]
                # The secret sealed before the restart still opens with the key from the data dir.
                reveal = {"Authorization": "Bearer " + admin_token(data_dir, "keep@example.com", "projects:read", "secrets:read")}
                values = httpx.get(f"http://127.0.0.1:{port}/v1/projects/{project['id']}/env-vars/values", headers=reveal)
                assert values.json()["variables"] == [{"key": "S", "value": "survives", "is_secret": True}]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
