"""CORS: allow-listed origins only."""

from __future__ import annotations

import pytest

from fastest.config import Settings

APP_ORIGIN = "https://app.fastest.example"


@pytest.fixture
def settings():
    return Settings(cors_origins=f"{APP_ORIGIN}, http://localhost:5173")


def test_preflight_from_an_allowed_origin(client):
    response = client.options(
        "/v1/projects",
        headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "Authorization" in response.headers["access-control-allow-headers"]
    assert "POST" in response.headers["access-control-allow-methods"]


def test_actual_request_exposes_our_headers(client, alice):
    response = client.get("/v1/projects", headers={**alice.headers, "Origin": APP_ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "X-Request-Id" in response.headers["access-control-expose-headers"]
    assert response.headers["vary"] == "Origin"


def test_other_origins_get_no_cors_headers(client, alice):
    response = client.get("/v1/projects", headers={**alice.headers, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options("/v1/projects", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405
