"""`POST /v1/auth/google`: ID tokens made here with our own RSA keys, the JWKS served by a real HTTP
server on loopback. Every kind of bad token is a 401 and creates nothing."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from tests.api.google_idp import CLIENT_ID, FakeGoogle, b64url_json
from tests.conftest import assert_problem, count_rows
from tests.edge_runtime import CLIENT_IP


@pytest.fixture
def settings(idp) -> Settings:
    return Settings(google_client_ids=f"other-client, {CLIENT_ID}", google_jwks_url=idp.jwks_url)


def sign_in(client, credential: str):
    return client.post("/v1/auth/google", json={"credential": credential})


def test_a_valid_token_signs_in_creates_the_user_once_and_gives_a_30_day_token(client, idp, clock, platform):
    first = sign_in(client, idp.token(idp.claims(clock.now().timestamp())))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 30 * 86400
    assert body["access_token"].startswith("fst_")
    assert body["user"]["email"] == "grace@example.com"
    assert first.headers["cache-control"] == "no-store"

    me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}).json()["user"]
    assert me == {"id": body["user"]["id"], "email": "grace@example.com", "name": "Grace Hopper",
                  "picture": "https://example.com/grace.png"}

    again = sign_in(client, idp.token(idp.claims(clock.now().timestamp(), name="Grace B. Hopper")))
    assert again.json()["user"]["id"] == body["user"]["id"]
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM users") == 1
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM auth_tokens") == 2
    me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {again.json()['access_token']}"}).json()["user"]
    assert me["name"] == "Grace B. Hopper"


def test_both_google_issuer_spellings_and_a_list_audience_are_accepted(client, idp, clock):
    now = clock.now().timestamp()
    assert sign_in(client, idp.token(idp.claims(now, iss="accounts.google.com"))).status_code == 200
    assert sign_in(client, idp.token(idp.claims(now, aud=["someone-else", CLIENT_ID]))).status_code == 200


def test_five_minutes_of_clock_skew_are_tolerated(client, idp, clock):
    now = clock.now().timestamp()
    assert sign_in(client, idp.token(idp.claims(now, exp=int(now) - 240))).status_code == 200
    assert sign_in(client, idp.token(idp.claims(now, iat=int(now) + 240))).status_code == 200


def _tampered(idp: FakeGoogle, now: float) -> str:
    header, _, signature = idp.token(idp.claims(now)).split(".")
    return f"{header}.{b64url_json(idp.claims(now, email='mallory@example.com'))}.{signature}"


REJECTIONS = {
    "wrong aud": lambda idp, now: idp.token(idp.claims(now, aud="not-our-client")),
    "wrong iss": lambda idp, now: idp.token(idp.claims(now, iss="https://evil.example.com")),
    "expired": lambda idp, now: idp.token(idp.claims(now, iat=int(now) - 7200, exp=int(now) - 360)),
    "future iat": lambda idp, now: idp.token(idp.claims(now, iat=int(now) + 360)),
    "alg none": lambda idp, now: idp.unsigned(idp.claims(now)),
    "HS256 with the public key": lambda idp, now: idp.hs256_with_public_key(idp.claims(now)),
    "unknown kid": lambda idp, now: (idp.add_key("never-published", publish=False), idp.token(idp.claims(now), kid="never-published"))[1],
    "tampered payload": _tampered,
    "unverified email": lambda idp, now: idp.token(idp.claims(now, email_verified=False)),
    "email_verified missing": lambda idp, now: idp.token(idp.claims(now, email_verified=None)),
    "signed by another key with our kid": lambda idp, now: (idp.add_key("rogue", publish=False), _kid_swapped(idp, now))[1],
    "not a JWT": lambda idp, now: "not.a.jwt",
    "two parts": lambda idp, now: "e30.e30",
}


def _kid_swapped(idp: FakeGoogle, now: float) -> str:
    """Signed by an unpublished key, but claiming the published key's id."""
    token = idp.token(idp.claims(now), kid="rogue")
    _, payload, signature = token.split(".")
    return f"{b64url_json({'alg': 'RS256', 'kid': 'key-1', 'typ': 'JWT'})}.{payload}.{signature}"


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_each_bad_token_is_401_and_creates_nothing(client, idp, clock, platform, case):
    credential = REJECTIONS[case](idp, clock.now().timestamp())
    response = sign_in(client, credential)
    body = assert_problem(response, 401, "invalid_credential")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "mallory" not in response.text and credential not in response.text
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM users") == 0
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM auth_tokens") == 0
    assert body["detail"] == "The Google credential is not valid."


def test_the_jwks_is_cached_per_cache_control(client, idp, clock):
    for _ in range(3):
        assert sign_in(client, idp.token(idp.claims(clock.now().timestamp()))).status_code == 200
    assert idp.fetches == 1
    clock.advance(3601)  # past max-age
    assert sign_in(client, idp.token(idp.claims(clock.now().timestamp()))).status_code == 200
    assert idp.fetches == 2


def test_a_no_store_jwks_is_fetched_every_time(client, idp, clock):
    idp.cache_control = "no-store"
    for _ in range(2):
        assert sign_in(client, idp.token(idp.claims(clock.now().timestamp()))).status_code == 200
    assert idp.fetches == 2


def test_an_unknown_kid_triggers_one_refresh_and_a_rotated_key_is_found(client, idp, clock):
    assert sign_in(client, idp.token(idp.claims(clock.now().timestamp()))).status_code == 200
    assert idp.fetches == 1
    clock.advance(120)
    idp.add_key("key-2")  # Google rotates: published now, not in our cached copy
    assert sign_in(client, idp.token(idp.claims(clock.now().timestamp()), kid="key-2")).status_code == 200
    assert idp.fetches == 2
    # Made-up key ids right after a refresh do not make us fetch again.
    for kid in ("made-up-1", "made-up-2"):
        idp.add_key(kid, publish=False)
        assert_problem(sign_in(client, idp.token(idp.claims(clock.now().timestamp()), kid=kid)), 401, "invalid_credential")
    assert idp.fetches == 2


def test_sign_in_is_audited_without_the_credential(client, idp, clock):
    credential = idp.token(idp.claims(clock.now().timestamp()))
    token = sign_in(client, credential).json()["access_token"]
    response = client.get("/v1/audit", headers={"Authorization": f"Bearer {token}", "X-Request-Id": "trace-1"})
    events = response.json()["events"]
    assert [e["type"] for e in events] == ["token.created", "auth.sign_in"]
    assert events[1]["data"] == {"method": "google"}
    assert events[1]["ip"] == CLIENT_IP and events[1]["request_id"].startswith("req_")
    assert credential not in response.text and token not in response.text


def test_without_configured_client_ids_google_sign_in_is_refused(client, idp, clock, platform):
    platform.settings = Settings(google_jwks_url=idp.jwks_url)
    assert_problem(sign_in(client, idp.token(idp.claims(clock.now().timestamp()))), 401, "invalid_credential")
    assert idp.fetches == 0


@pytest.mark.parametrize("body", [{}, {"credential": ""}, {"credential": 5}, {"credential": "x", "extra": 1}])
def test_a_malformed_body_is_422(client, body):
    assert_problem(client.post("/v1/auth/google", json=body), 422, "validation_failed")
