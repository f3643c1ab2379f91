"""The real `fastest` executable: `serve` on a free port, `admin token`, calls over HTTP, clean stop."""

from __future__ import annotations

import signal
import sqlite3
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import FASTEST, admin_token, free_port, running_server, wait_until_healthy

@pytest.fixture
def server(tmp_path: Path):
    data_dir = tmp_path / "data"
    with running_server(data_dir, {"FASTEST_RATE_LIMIT_PER_MINUTE": "1000"}) as (base_url, process):
        yield base_url, data_dir, process


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
