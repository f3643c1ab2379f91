"""The API's conventions (docs/api/README.md), asserted through the HTTP API on the local runtime."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from fastest.app import create_app
from fastest.config import Settings
from tests.conftest import assert_problem, count_rows, make_caller, run


def test_unknown_route_is_a_problem_404(client):
    body = assert_problem(client.get("/v1/nope"), 404, "not_found")
    assert body["title"] == "Not found"


def test_wrong_method_is_a_problem_405_with_allow(client, alice):
    response = client.put("/v1/projects", headers=alice.headers, json={"name": "x"})
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"] and "POST" in response.headers["allow"]


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PURGE", "PROPFIND"])
def test_a_method_no_route_takes_is_a_problem_405_with_allow(client, alice, method):
    """Methods outside the usual few (Python's HTTPMethod knows TRACE, not QUERY or WebDAV's) too."""
    response = client.request(method, "/v1/projects", headers=alice.headers)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


def test_request_id_is_generated_and_echoed(client):
    generated = client.get("/health").headers["x-request-id"]
    assert generated.startswith("req_")
    assert client.get("/health", headers={"X-Request-Id": "trace-42"}).headers["x-request-id"] == "trace-42"
    # Something that could smuggle into logs is replaced, not echoed.
    assert client.get("/health", headers={"X-Request-Id": "a b\tc"}).headers["x-request-id"].startswith("req_")


def test_malformed_json_is_400_invalid_json_and_creates_nothing(client, alice, platform):
    response = client.post(
        "/v1/projects", headers={**alice.headers, "content-type": "application/json"}, content=b'{"name": '
    )
    assert_problem(response, 400, "invalid_json")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 0


@pytest.mark.parametrize("name", [123, False, None, ["x"], {"a": 1}, "", "   ", "x" * 101, "tab\there", "trailing newline\n"])
def test_wrong_types_and_bad_values_are_422_with_the_field(client, alice, platform, name):
    body = assert_problem(client.post("/v1/projects", headers=alice.headers, json={"name": name}), 422, "validation_failed")
    assert "name" in body["error"]["fields"]
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 0


def test_unknown_fields_are_rejected_consistently(client, alice, platform):
    body = assert_problem(
        client.post("/v1/projects", headers=alice.headers, json={"name": "ok", "colour": "red"}), 422, "validation_failed"
    )
    assert body["error"]["fields"] == {"colour": "unknown field"}
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 0


@pytest.mark.parametrize("body", [[], "name", 1, None])
def test_a_body_that_is_not_an_object_is_422(client, alice, body):
    assert_problem(client.post("/v1/projects", headers=alice.headers, json=body), 422, "validation_failed")


@pytest.mark.parametrize("limit", ["4abc", "1.5", "false", "0", "101", "-1", ""])
def test_limit_is_strictly_an_integer_in_range(client, alice, limit):
    body = assert_problem(client.get(f"/v1/projects?limit={limit}", headers=alice.headers), 422, "validation_failed")
    assert "query.limit" in body["error"]["fields"]


def test_integers_in_json_bodies_are_not_coerced(client, alice):
    project = client.post("/v1/projects", headers=alice.headers, json={"name": "p"}).json()["project"]
    for value in ["true", 1, "1"]:
        response = client.post(
            f"/v1/projects/{project['id']}/env-vars", headers=alice.headers, json={"key": "A", "value": "v", "is_secret": value}
        )
        assert_problem(response, 422, "validation_failed")
    assert client.get(f"/v1/projects/{project['id']}/env-vars", headers=alice.headers).json()["variables"] == []


def test_oversize_body_is_413_before_reading(client, alice, platform):
    big = b'{"name": "' + b"x" * (platform.settings.max_body_bytes + 10) + b'"}'
    response = client.post("/v1/projects", headers={**alice.headers, "content-type": "application/json"}, content=big)
    assert_problem(response, 413, "payload_too_large")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 0


def test_oversize_streamed_body_without_length_is_413(client, alice, platform):
    chunk = b"x" * 65536
    chunks = (platform.settings.max_body_bytes // len(chunk)) + 2

    def stream():
        yield b'{"name": "'
        for _ in range(chunks):
            yield chunk
        yield b'"}'

    response = client.post("/v1/projects", headers={**alice.headers, "content-type": "application/json"}, content=stream())
    assert_problem(response, 413, "payload_too_large")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 0


def test_unexpected_errors_are_500_without_leaks(platform):
    app = create_app(lambda scope: platform)

    async def explode():
        raise RuntimeError("SELECT secret_value FROM env_vars -- sk-live-123")

    app.add_api_route("/v1/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/explode")
    body = assert_problem(response, 500, "internal")
    assert "secret" not in response.text and "SELECT" not in response.text and "Traceback" not in response.text
    assert body["detail"].startswith("Something went wrong")


class TestAuthentication:
    def test_missing_token_is_401_with_challenge(self, client):
        response = client.get("/v1/projects")
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")

    @pytest.mark.parametrize("token", ["nope", "fst_" + "a" * 42, "Basic abc"])
    def test_malformed_or_unknown_token_is_401(self, client, token):
        response = client.get("/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and "www-authenticate" in response.headers

    def test_valid_looking_but_unknown_token_is_401(self, client, alice, platform):
        from fastest.domain.tokens import ENTROPY_BYTES, format_token

        stranger = format_token(bytes(ENTROPY_BYTES))
        assert_problem(client.get("/v1/projects", headers={"Authorization": f"Bearer {stranger}"}), 401, "invalid_token")

    def test_expired_token_is_401(self, client, alice, clock):
        clock.advance(timedelta(days=31).total_seconds())
        assert_problem(client.get("/v1/projects", headers=alice.headers), 401, "token_expired")

    def test_revoked_token_is_401(self, client, alice, platform):
        from fastest.services import identity

        token_id = run(platform.db.prepare("SELECT id FROM auth_tokens WHERE user_id = ?").bind(alice.user_id).first("id"))
        assert run(identity.revoke_token(platform, alice.user_id, token_id))
        assert_problem(client.get("/v1/projects", headers=alice.headers), 401, "invalid_token")

    def test_token_hash_only_at_rest_and_last_used_recorded(self, client, alice, platform):
        assert client.get("/v1/projects", headers=alice.headers).status_code == 200
        row = run(platform.db.prepare("SELECT * FROM auth_tokens WHERE user_id = ?").bind(alice.user_id).first())
        assert alice.token not in str(row)
        assert row["last_used_at"] is not None

    def test_missing_ability_is_403(self, client, platform):
        reader = make_caller(platform, "reader@example.com", abilities=("projects:read",))
        assert client.get("/v1/projects", headers=reader.headers).status_code == 200
        body = assert_problem(client.post("/v1/projects", headers=reader.headers, json={"name": "x"}), 403, "forbidden")
        assert body["required_ability"] == "projects:write"
        assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 0


class TestRateLimits:
    @pytest.fixture
    def settings(self):
        return Settings(rate_limit_per_minute=5)

    def test_429_with_retry_after_then_recovers(self, client, alice, bob, clock):
        for remaining in range(4, -1, -1):
            response = client.get("/v1/projects", headers=alice.headers)
            assert response.status_code == 200
            assert response.headers["ratelimit-policy"] == '"default";q=5;w=60'
            assert response.headers["ratelimit"].startswith(f'"default";r={remaining};')
        limited = client.get("/v1/projects", headers=alice.headers)
        assert_problem(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "ratelimit" in limited.headers
        # Per user: bob is unaffected.
        assert client.get("/v1/projects", headers=bob.headers).status_code == 200
        clock.advance(61)
        assert client.get("/v1/projects", headers=alice.headers).status_code == 200


class TestIdempotency:
    def test_replay_returns_the_stored_response_and_creates_once(self, client, alice, platform):
        headers = {**alice.headers, "Idempotency-Key": "create-1"}
        first = client.post("/v1/projects", headers=headers, json={"name": "once"})
        second = client.post("/v1/projects", headers=headers, json={"name": "once"})
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 1

    def test_same_key_different_body_is_422(self, client, alice, platform):
        headers = {**alice.headers, "Idempotency-Key": "create-2"}
        assert client.post("/v1/projects", headers=headers, json={"name": "a"}).status_code == 201
        assert_problem(client.post("/v1/projects", headers=headers, json={"name": "b"}), 422, "idempotency_key_reused")
        assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 1

    def test_same_key_while_in_flight_is_409(self, client, alice, platform):
        from fastest.services.safeguards import idempotency

        body = b'{"name":"racing"}'
        print_ = idempotency.fingerprint("POST", "/v1/projects", body)
        assert run(idempotency.begin(platform, alice.user_id, "create-3", print_)) is None  # first request running
        response = client.post(
            "/v1/projects",
            headers={**alice.headers, "Idempotency-Key": "create-3", "content-type": "application/json"},
            content=body,
        )
        assert_problem(response, 409, "idempotency_in_flight")
        assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 0

    def test_keys_are_per_user_and_expire_after_24h(self, client, alice, bob, clock, platform):
        key = {"Idempotency-Key": "shared"}
        assert client.post("/v1/projects", headers={**alice.headers, **key}, json={"name": "a"}).status_code == 201
        assert client.post("/v1/projects", headers={**bob.headers, **key}, json={"name": "b"}).status_code == 201
        clock.advance(timedelta(hours=24, seconds=1).total_seconds())
        # Expired: the same key now starts a new request (which conflicts on the name, proving it ran).
        again = client.post("/v1/projects", headers={**alice.headers, **key}, json={"name": "a"})
        assert_problem(again, 409, "project_name_taken")

    def test_a_failed_request_does_not_burn_the_key(self, client, alice):
        headers = {**alice.headers, "Idempotency-Key": "retry-me"}
        assert client.post("/v1/projects", headers=alice.headers, json={"name": "taken"}).status_code == 201
        assert client.post("/v1/projects", headers=headers, json={"name": "taken"}).status_code == 409
        # The conflict released the key: a corrected retry with a new body is a new request.
        assert client.post("/v1/projects", headers=headers, json={"name": "free"}).status_code == 201


class TestPagination:
    def test_no_duplicates_or_gaps_while_rows_are_inserted(self, client, alice, clock):
        created = set()
        for i in range(25):
            clock.advance(0.001)
            created.add(client.post("/v1/projects", headers=alice.headers, json={"name": f"p{i:02d}"}).json()["project"]["id"])
        seen: list[str] = []
        cursor = None
        inserted = 0
        while True:
            url = "/v1/projects?limit=7" + (f"&cursor={cursor}" if cursor else "")
            page = client.get(url, headers=alice.headers).json()
            seen.extend(p["id"] for p in page["projects"])
            # Someone creates projects between pages.
            clock.advance(0.001)
            client.post("/v1/projects", headers=alice.headers, json={"name": f"new{inserted}"})
            inserted += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), "a row was returned twice"
        assert created <= set(seen), "a row that existed before paging began was skipped"

    def test_default_and_maximum_limits(self, client, alice):
        for i in range(3):
            client.post("/v1/projects", headers=alice.headers, json={"name": f"p{i}"})
        page = client.get("/v1/projects?limit=100", headers=alice.headers).json()
        assert len(page["projects"]) == 3 and page["next_cursor"] is None

    @pytest.mark.parametrize("cursor", ["garbage", "W10", "WyJhIl0"])
    def test_a_forged_cursor_is_422(self, client, alice, cursor):
        assert_problem(client.get(f"/v1/projects?cursor={cursor}", headers=alice.headers), 422, "validation_failed")


def test_health_and_deep_health(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["timestamp"].endswith("Z")
    deep = client.get("/health?deep=1").json()
    assert deep["status"] == "ok"
    assert set(deep["checks"]) == {"d1", "r2", "kv"} and all(c["ok"] for c in deep["checks"].values())


def test_openapi_describes_routes_and_docs_page_renders(client):
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert "/v1/projects" in spec["paths"] and "/v1/projects/{project_id}/env-vars/values" in spec["paths"]
    problem = spec["paths"]["/v1/projects"]["post"]["responses"]["422"]["content"]
    assert problem == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v1/projects" in page.text and "<script" not in page.text
