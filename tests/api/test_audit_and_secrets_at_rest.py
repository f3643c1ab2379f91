"""`GET /v1/audit` (cursor, per user, request id and IP, never a secret), and the database file
holding no plaintext token, device code or API key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastest.config import Settings
from fastest.domain.device_codes import GRANT_TYPE
from fastest.domain.tokens import ABILITIES
from fastest.platform import EDGE, LOCAL
from tests.api.google_idp import CLIENT_ID
from tests.conftest import assert_problem, make_caller
from tests.edge_runtime import CLIENT_IP


def test_audit_pages_newest_first_without_gaps_and_only_the_callers(client, platform):
    caller = make_caller(platform, "a@example.com", abilities=ABILITIES)
    other = make_caller(platform, "b@example.com", abilities=ABILITIES)
    for i in range(5):
        client.post("/v1/auth/api-keys", headers={**caller.headers, "X-Request-Id": f"set-{i}"},
                    json={"provider": f"p{i}", "key_value": f"value-{i}-secret"})
    client.post("/v1/auth/api-keys", headers=other.headers, json={"provider": "x", "key_value": "other-secret"})

    seen, cursor = [], None
    while True:
        url = "/v1/audit?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=caller.headers).json()
        seen += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["request_id"] for e in seen] == [f"set-{i}" for i in reversed(range(5))]
    assert all(e["type"] == "api_key.set" and e["ip"] == CLIENT_IP for e in seen)
    assert [e["data"]["provider"] for e in seen] == ["p4", "p3", "p2", "p1", "p0"]
    assert all("secret" not in str(e) for e in seen)


def test_audit_needs_a_token_and_a_real_cursor(client, alice):
    assert_problem(client.get("/v1/audit"), 401, "unauthenticated")
    assert_problem(client.get("/v1/audit?cursor=nope", headers=alice.headers), 422, "validation_failed")
    assert_problem(client.get("/v1/audit?limit=0", headers=alice.headers), 422, "validation_failed")


@pytest.fixture
def settings(idp) -> Settings:
    return Settings(google_client_ids=CLIENT_ID, google_jwks_url=idp.jwks_url)


def test_the_database_file_holds_no_plaintext_token_device_code_or_key(client, platform, idp, clock, tmp_path):
    secrets: list[str] = []
    signed_in = client.post("/v1/auth/google", json={"credential": idp.token(idp.claims(clock.now().timestamp()))}).json()
    token = signed_in["access_token"]
    secrets.append(token)
    admin = make_caller(platform, "admin@example.com", abilities=ABILITIES)
    secrets.append(admin.token)

    started = client.post("/v1/oauth/device", json={}).json()
    secrets.append(started["device_code"])
    client.post("/v1/oauth/device/authorize", headers=admin.headers, json={"user_code": started["user_code"]})
    device_token = client.post("/v1/oauth/token", json={"grant_type": GRANT_TYPE, "device_code": started["device_code"]}).json()["access_token"]
    secrets.append(device_token)

    key = "sk-live-THIS-IS-THE-PLAINTEXT-KEY-0123456789"
    assert client.post("/v1/auth/api-keys", headers=admin.headers, json={"provider": "openai", "key_value": key}).status_code == 200
    secrets.append(key)
    assert client.get("/v1/auth/api-keys/values", headers=admin.headers).json()["env_vars"]["OPENAI_API_KEY"] == key
    project = client.post("/v1/projects", headers=admin.headers, json={"name": "p"}).json()["project"]["id"]
    env_secret = "env-secret-value-PLAINTEXT-987654"
    client.post(f"/v1/projects/{project}/env-vars", headers=admin.headers,
                json={"key": "TOKEN", "value": env_secret, "is_secret": True})
    secrets.append(env_secret)

    data_dir = tmp_path / "data"
    files = [p for p in data_dir.iterdir() if p.name.startswith("d1.sqlite")]
    assert files, "no database file found"
    stored = b"".join(Path(p).read_bytes() for p in files)
    assert len(stored) > 4096
    for secret in secrets:
        for form in (secret.encode(), secret.encode("utf-16-le")):
            assert form not in stored, f"plaintext secret found in the database: {secret[:8]}…"
    # The part of a token after its prefix is not stored either (only the SHA-256 of the whole).
    for secret in (token, admin.token, device_token):
        assert secret[4:20].encode() not in stored


def test_revealing_env_vars_is_a_security_event(client, platform):
    caller = make_caller(platform, "env@example.com", abilities=ABILITIES)
    project = client.post("/v1/projects", headers=caller.headers, json={"name": "p"}).json()["project"]["id"]
    client.post(f"/v1/projects/{project}/env-vars", headers=caller.headers,
                json={"key": "DB_PASSWORD", "value": "hunter2-hunter2", "is_secret": True})
    assert client.get(f"/v1/projects/{project}/env-vars/values", headers=caller.headers).status_code == 200
    response = client.get("/v1/audit", headers=caller.headers)
    event = response.json()["events"][0]
    assert event["type"] == "secrets.revealed"
    assert event["data"] == {"project_id": project, "keys": ["DB_PASSWORD"]}
    assert "hunter2" not in response.text


@pytest.mark.parametrize("capabilities, expected", [(LOCAL, "testclient"), (EDGE, "203.0.113.9")])
def test_the_audited_ip_is_the_edges_header_only_where_the_platform_has_one(client, platform, capabilities, expected):
    """Behind Cloudflare the client's address is the header Cloudflare sets; locally that header is
    whatever the client wrote, so the socket's peer counts."""
    platform.capabilities = capabilities
    caller = make_caller(platform, "ip@example.com", abilities=ABILITIES)
    client.post("/v1/auth/api-keys", headers={**caller.headers, "CF-Connecting-IP": "203.0.113.9"},
                json={"provider": "p", "key_value": "value-secret"})
    [event] = client.get("/v1/audit", headers=caller.headers).json()["events"]
    assert event["ip"] == expected
