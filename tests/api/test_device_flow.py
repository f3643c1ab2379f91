"""The OAuth device flow (RFC 8628) through the HTTP API: start, poll (pending, slow_down), decide,
redeem once; expiry, denial, the RFC's error codes, and user-code guessing stopped."""

from __future__ import annotations

import re

from fastest.domain.device_codes import GRANT_TYPE
from tests.conftest import assert_problem, count_rows, make_caller

GRANT = {"grant_type": GRANT_TYPE}


def start(client, **body):
    response = client.post("/v1/oauth/device", json=body) if body else client.post("/v1/oauth/device")
    assert response.status_code == 200, response.text
    return response.json()


def poll(client, device_code: str):
    return client.post("/v1/oauth/token", json={**GRANT, "device_code": device_code})


def oauth_error(response, error: str) -> dict:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error and body["error_description"]
    assert response.headers["cache-control"] == "no-store"
    return body


def test_start_returns_001s_shape(client, platform):
    started = start(client)
    assert set(started) == {"device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in", "interval"}
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", started["user_code"])
    assert len(started["device_code"]) >= 43  # 32 random bytes, base64url
    assert started["expires_in"] == 900 and started["interval"] == 5
    assert started["verification_uri"] == "http://127.0.0.1:8787/device"
    assert started["verification_uri_complete"] == f"http://127.0.0.1:8787/device?user_code={started['user_code']}"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_codes WHERE device_code_hash = ?", started["device_code"]) == 0


def test_pending_slow_down_approve_one_token_then_the_code_is_spent(client, clock, alice, platform):
    started = start(client, client_name="fastest CLI on laptop")
    code = started["device_code"]
    oauth_error(poll(client, code), "authorization_pending")
    body = oauth_error(poll(client, code), "slow_down")  # polled again at once
    assert body["interval"] == 10
    clock.advance(6)  # the old interval is not enough any more: raised for good
    assert oauth_error(poll(client, code), "slow_down")["interval"] == 15
    clock.advance(15)
    oauth_error(poll(client, code), "authorization_pending")

    approved = client.post("/v1/oauth/device/authorize", headers=alice.headers, json={"user_code": started["user_code"]})
    assert approved.status_code == 200, approved.text
    assert approved.json()["success"] is True

    clock.advance(15)
    granted = poll(client, code)
    assert granted.status_code == 200, granted.text
    grant = granted.json()
    assert grant["token_type"] == "Bearer" and grant["expires_in"] == 30 * 86400
    assert grant["user"] == {"id": alice.user_id, "email": alice.email}
    me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {grant['access_token']}"})
    assert me.json()["user"]["id"] == alice.user_id

    clock.advance(15)
    oauth_error(poll(client, code), "invalid_grant")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM auth_tokens WHERE user_id = ?", alice.user_id) == 2
    labels = client.get("/v1/auth/tokens", headers=alice.headers).json()["tokens"]
    assert "device: fastest CLI on laptop" in [t["label"] for t in labels]
    events = client.get("/v1/audit", headers=alice.headers).json()["events"]
    assert [e["type"] for e in events] == ["token.created", "device.approved"]
    assert events[0]["data"]["device_user_code"] == started["user_code"]
    assert events[0]["data"]["label"] == "device: fastest CLI on laptop"


def test_user_codes_match_case_and_dash_insensitively(client, alice):
    started = start(client)
    typed = started["user_code"].replace("-", "").lower()
    response = client.post("/v1/oauth/device/authorize", headers=alice.headers, json={"user_code": f" {typed} "})
    assert response.status_code == 200, response.text


def test_an_expired_code_is_expired_token_and_cannot_be_approved(client, clock, alice, platform):
    started = start(client)
    clock.advance(901)
    oauth_error(poll(client, started["device_code"]), "expired_token")
    fresh = make_caller(platform, alice.email)
    response = client.post("/v1/oauth/device/authorize", headers=fresh.headers, json={"user_code": started["user_code"]})
    assert_problem(response, 404, "invalid_user_code")


def test_an_approved_code_expires_unredeemed(client, clock, alice):
    started = start(client)
    client.post("/v1/oauth/device/authorize", headers=alice.headers, json={"user_code": started["user_code"]})
    clock.advance(901)
    oauth_error(poll(client, started["device_code"]), "expired_token")


def test_a_denied_code_is_access_denied_and_cannot_then_be_approved(client, clock, alice, platform):
    started = start(client)
    denied = client.post("/v1/oauth/device/deny", headers=alice.headers, json={"user_code": started["user_code"]})
    assert denied.json() == {"success": True}
    oauth_error(poll(client, started["device_code"]), "access_denied")
    again = client.post("/v1/oauth/device/authorize", headers=alice.headers, json={"user_code": started["user_code"]})
    assert_problem(again, 404, "invalid_user_code")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM auth_tokens") == 1  # alice's own
    events = client.get("/v1/audit", headers=alice.headers).json()["events"]
    assert events[0]["type"] == "device.denied" and events[0]["data"]["user_code"] == started["user_code"]


def test_unknown_codes_and_wrong_grant_types(client):
    oauth_error(poll(client, "no-such-code"), "invalid_grant")
    oauth_error(client.post("/v1/oauth/token", json={"grant_type": "password", "device_code": "x"}), "unsupported_grant_type")
    oauth_error(client.post("/v1/oauth/token", json={"grant_type": GRANT_TYPE}), "invalid_request")
    oauth_error(client.post("/v1/oauth/token", json={}), "invalid_request")
    oauth_error(client.post("/v1/oauth/token", content=b"{nope", headers={"content-type": "application/json"}), "invalid_request")
    oauth_error(client.post("/v1/oauth/token", json=[1]), "invalid_request")


def test_the_token_route_accepts_the_rfcs_form_encoding(client, alice, clock):
    started = start(client)
    client.post("/v1/oauth/device/authorize", headers=alice.headers, json={"user_code": started["user_code"]})
    response = client.post("/v1/oauth/token", data={**GRANT, "device_code": started["device_code"]})
    assert response.status_code == 200, response.text


def test_a_device_may_ask_for_fewer_abilities_and_never_gets_more_than_the_approver(client, platform, clock):
    started = start(client, scope="projects:read sync")
    approver = make_caller(platform, "carol@example.com", abilities=("sync", "keys:write"))
    client.post("/v1/oauth/device/authorize", headers=approver.headers, json={"user_code": started["user_code"]})
    grant = poll(client, started["device_code"]).json()
    assert grant["abilities"] == ["sync"]
    headers = {"Authorization": f"Bearer {grant['access_token']}"}
    assert_problem(client.get("/v1/projects", headers=headers), 403, "forbidden")


def test_an_unknown_scope_is_422_and_starts_nothing(client, platform):
    body = assert_problem(client.post("/v1/oauth/device", json={"scope": "projects:read root"}), 422, "validation_failed")
    assert "scope" in body["error"]["fields"]
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_codes") == 0


def test_deciding_needs_a_signed_in_person(client):
    started = start(client)
    assert_problem(client.post("/v1/oauth/device/authorize", json={"user_code": started["user_code"]}), 401, "unauthenticated")
    assert_problem(client.post("/v1/oauth/device/deny", json={"user_code": started["user_code"]}), 401, "unauthenticated")
    bad = {"Authorization": "Bearer fst_nope"}
    assert_problem(client.post("/v1/oauth/device/authorize", headers=bad, json={"user_code": started["user_code"]}), 401, "invalid_token")
    oauth_error(poll(client, started["device_code"]), "authorization_pending")


def test_guessing_user_codes_is_stopped_even_for_the_right_code(client, alice, platform):
    started = start(client)
    for guess in ["BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "FFFF-FFFF", "GGGG-GGGG",
                  "HHHH-HHHH", "JJJJ-JJJJ", "KKKK-KKKK", "LLLL-LLLL", "MMMM-MMMM"]:
        if guess == started["user_code"]:
            continue
        assert_problem(client.post("/v1/oauth/device/authorize", headers=alice.headers, json={"user_code": guess}), 404, "invalid_user_code")
    response = client.post("/v1/oauth/device/authorize", headers=alice.headers, json={"user_code": started["user_code"]})
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) > 0
    # Another person from the same address is stopped too (the limit is per IP as well as per user).
    bob = make_caller(platform, "bob@example.com")
    assert_problem(client.post("/v1/oauth/device/authorize", headers=bob.headers, json={"user_code": started["user_code"]}), 429, "rate_limited")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_codes WHERE status = 'pending'") == 1


def test_expired_codes_are_purged_by_the_job(client, clock, platform):
    from fastest.services.operations import jobs
    from tests.conftest import run

    start(client)
    clock.advance(900 + 86400 + 1)
    assert run(jobs.run(platform, "purge-device-codes")) == 1
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_codes") == 0


def test_an_old_bearer_token_cannot_approve_a_device_but_may_deny(client, clock, alice, platform):
    """Approving mints a fresh token: a stale one must not launder itself into a fresh session."""
    from fastest.config import Settings

    platform.settings = Settings(device_code_ttl_seconds=1800)
    started = start(client)
    clock.advance(15 * 60 + 1)
    response = client.post("/v1/oauth/device/authorize", headers=alice.headers, json={"user_code": started["user_code"]})
    assert_problem(response, 403, "reauthentication_required")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_codes WHERE status = 'pending'") == 1
    assert client.post("/v1/oauth/device/deny", headers=alice.headers, json={"user_code": started["user_code"]}).status_code == 200
