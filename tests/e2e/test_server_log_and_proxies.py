"""What `fastest serve` prints and whom it believes: no bearer token in its log (WebSocket and SSE
pass theirs as `?token=`, failed attempts included), and a client's `X-Forwarded-For` is not taken
for its address unless the operator names a proxy."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.e2e.conftest import admin_token, running_server


def stopped_log(process) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=30)
    return output


def conversation_of(base_url: str, token: str) -> str:
    api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    project = api.post("/v1/projects", json={"name": "logged"}).json()["project"]
    workspace = api.post(f"/v1/projects/{project['id']}/workspaces", json={"name": "w"}).json()["workspace"]
    return api.post("/v1/conversations", json={"workspace_id": workspace["id"]}).json()["conversation"]["id"]


def test_no_token_reaches_the_server_log(tmp_path: Path):
    data_dir = tmp_path / "data"
    token = admin_token(data_dir, "logged@example.com")
    bogus = "fst_" + "A" * 43
    with running_server(data_dir) as (base_url, process):
        conversation = conversation_of(base_url, token)
        ws_base = base_url.replace("http://", "ws://")
        with connect(f"{ws_base}/v1/conversations/{conversation}/stream?token={token}") as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        try:
            with connect(f"{ws_base}/v1/conversations/{conversation}/stream?since=0&token={bogus}") as ws:
                ws.recv(timeout=10)
        except (ConnectionClosed, InvalidStatus):
            pass
        with httpx.stream("GET", f"{base_url}/v1/conversations/{conversation}/events?token={token}", timeout=10) as sse:
            next(sse.iter_lines())
        assert httpx.get(f"{base_url}/v1/projects?token={bogus}", timeout=10).status_code == 401
        log = stopped_log(process)
    assert f"/v1/conversations/{conversation}/stream" in log and "[redacted]" in log
    assert token not in log and token[4:20] not in log and bogus not in log and "AAAAAAAAAA" not in log


def audit_ips(base_url: str, token: str) -> list[str]:
    events = httpx.get(f"{base_url}/v1/audit", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["events"]
    return [event["ip"] for event in events if event["type"] == "token.revoked"]


def test_forwarded_for_is_believed_only_from_a_configured_proxy(tmp_path: Path):
    forged = {"X-Forwarded-For": "203.0.113.9"}
    data_dir = tmp_path / "data"
    with running_server(data_dir) as (base_url, _):
        reader = admin_token(data_dir, "audited@example.com")
        leaving = admin_token(data_dir, "audited@example.com")
        assert httpx.post(f"{base_url}/v1/auth/logout", headers={"Authorization": f"Bearer {leaving}", **forged},
                          timeout=10).status_code == 204
        assert audit_ips(base_url, reader) == ["127.0.0.1"]
    with running_server(tmp_path / "proxied", {"FASTEST_FORWARDED_ALLOW_IPS": "127.0.0.1"}) as (base_url, _):
        reader = admin_token(tmp_path / "proxied", "audited@example.com")
        leaving = admin_token(tmp_path / "proxied", "audited@example.com")
        httpx.post(f"{base_url}/v1/auth/logout", headers={"Authorization": f"Bearer {leaving}", **forged}, timeout=10)
        assert audit_ips(base_url, reader) == ["203.0.113.9"]
