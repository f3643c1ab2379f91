"""Sessions (me, tokens, revoke, logout), provider API keys, and the abilities / fresh-session
matrices of the Auth routes."""

from __future__ import annotations

import pytest

from fastest.domain.tokens import ABILITIES, DEFAULT_ABILITIES
from fastest.services.identity import api_keys
from tests.conftest import assert_problem, count_rows, make_caller, run

OPENAI_KEY = "sk-test-0123456789abcdefWXYZ"


@pytest.fixture
def keyholder(platform):
    """A fresh token with every ability (secrets:read included)."""
    return make_caller(platform, "keys@example.com", abilities=ABILITIES)


def test_me_answers_for_any_valid_token(client, platform):
    caller = make_caller(platform, "min@example.com", abilities=("sync",))
    body = client.get("/v1/auth/me", headers=caller.headers).json()
    assert body == {"user": {"id": caller.user_id, "email": "min@example.com", "name": None, "picture": None}}
    assert_problem(client.get("/v1/auth/me"), 401, "unauthenticated")


def test_tokens_list_sessions_without_the_tokens(client, platform, clock, alice):
    clock.advance(1)  # newest first needs distinct times (ids made in one millisecond sort at random)
    second = make_caller(platform, alice.email)
    response = client.get("/v1/auth/tokens", headers=alice.headers)
    tokens = response.json()["tokens"]
    assert len(tokens) == 2 and alice.token not in response.text and second.token not in response.text
    assert [t["current"] for t in tokens] == [False, True]  # newest first; the caller's marked
    assert set(tokens[0]) == {"id", "label", "abilities", "created_at", "authenticated_at", "last_used_at", "expires_at", "current"}
    page = client.get("/v1/auth/tokens?limit=1", headers=alice.headers).json()
    rest = client.get(f"/v1/auth/tokens?limit=1&cursor={page['next_cursor']}", headers=alice.headers).json()
    assert [t["id"] for t in page["tokens"] + rest["tokens"]] == [t["id"] for t in tokens]
    assert rest["next_cursor"] is None


def test_revoking_a_token_ends_it_and_is_audited(client, platform, alice, bob):
    other = make_caller(platform, alice.email)
    other_id = next(t["id"] for t in client.get("/v1/auth/tokens", headers=other.headers).json()["tokens"] if t["current"])
    assert client.delete(f"/v1/auth/tokens/{other_id}", headers=alice.headers).json() == {"success": True}
    assert_problem(client.get("/v1/auth/me", headers=other.headers), 401, "invalid_token")
    assert_problem(client.delete(f"/v1/auth/tokens/{other_id}", headers=alice.headers), 404, "not_found")
    # Another user's token is a 404, and stays valid.
    bob_id = client.get("/v1/auth/tokens", headers=bob.headers).json()["tokens"][0]["id"]
    assert_problem(client.delete(f"/v1/auth/tokens/{bob_id}", headers=alice.headers), 404, "not_found")
    assert client.get("/v1/auth/me", headers=bob.headers).status_code == 200
    events = client.get("/v1/audit", headers=alice.headers).json()["events"]
    assert [e["type"] for e in events] == ["token.revoked"]
    assert events[0]["data"] == {"token_id": other_id, "reason": "revoked"}


def test_logout_revokes_the_calling_token_only(client, platform, alice):
    other = make_caller(platform, alice.email)
    response = client.post("/v1/auth/logout", headers=alice.headers)
    assert response.status_code == 204 and response.content == b""
    assert_problem(client.get("/v1/auth/me", headers=alice.headers), 401, "invalid_token")
    assert client.get("/v1/auth/me", headers=other.headers).status_code == 200


def test_api_keys_set_list_masked_reveal_delete(client, keyholder, platform):
    h = keyholder.headers
    assert client.post("/v1/auth/api-keys", headers=h, json={"provider": "openai", "key_value": OPENAI_KEY}).json() == {"success": True}
    client.post("/v1/auth/api-keys", headers=h, json={"provider": "anthropic", "key_value": "short-key"})
    listed = client.get("/v1/auth/api-keys", headers=h)
    assert OPENAI_KEY not in listed.text and "short-key" not in listed.text
    by_provider = {k["provider"]: k for k in listed.json()["api_keys"]}
    assert by_provider["openai"]["key_value"].endswith("WXYZ") and not by_provider["openai"]["key_value"].startswith("sk")
    assert by_provider["openai"]["key_name"] == "OPENAI_API_KEY"
    assert by_provider["anthropic"]["key_value"] == "••••••••"  # too short to show any of it

    values = client.get("/v1/auth/api-keys/values", headers=h)
    assert values.json() == {"env_vars": {"ANTHROPIC_API_KEY": "short-key", "OPENAI_API_KEY": OPENAI_KEY}}
    assert values.headers["cache-control"] == "no-store"

    # Update in place: one row per provider.
    client.post("/v1/auth/api-keys", headers=h, json={"provider": "openai", "key_value": "sk-new-key-9999"})
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM api_keys WHERE provider = 'openai'") == 1
    assert run(api_keys.provider_key(platform, keyholder.user_id, "openai")) == "sk-new-key-9999"
    assert run(api_keys.provider_key(platform, keyholder.user_id, "mistral")) is None

    assert client.delete("/v1/auth/api-keys/openai", headers=h).json() == {"success": True}
    assert_problem(client.delete("/v1/auth/api-keys/openai", headers=h), 404, "not_found")
    assert [k["provider"] for k in client.get("/v1/auth/api-keys", headers=h).json()["api_keys"]] == ["anthropic"]

    events = client.get("/v1/audit", headers=h)
    assert [e["type"] for e in events.json()["events"]] == [
        "api_key.deleted", "api_key.set", "secrets.revealed", "api_key.set", "api_key.set"
    ]
    assert OPENAI_KEY not in events.text and "short-key" not in events.text and "sk-new" not in events.text


def test_keys_are_per_user(client, keyholder, platform):
    other = make_caller(platform, "other@example.com", abilities=ABILITIES)
    client.post("/v1/auth/api-keys", headers=keyholder.headers, json={"provider": "openai", "key_value": OPENAI_KEY})
    assert client.get("/v1/auth/api-keys", headers=other.headers).json() == {"api_keys": []}
    assert client.get("/v1/auth/api-keys/values", headers=other.headers).json() == {"env_vars": {}}
    assert_problem(client.delete("/v1/auth/api-keys/openai", headers=other.headers), 404, "not_found")


def test_a_ciphertext_moved_to_another_row_or_user_does_not_open(client, keyholder, platform):
    other = make_caller(platform, "other@example.com", abilities=ABILITIES)
    client.post("/v1/auth/api-keys", headers=keyholder.headers, json={"provider": "openai", "key_value": OPENAI_KEY})
    client.post("/v1/auth/api-keys", headers=keyholder.headers, json={"provider": "groq", "key_value": "gsk-groq-key-1111"})
    client.post("/v1/auth/api-keys", headers=other.headers, json={"provider": "openai", "key_value": "sk-other-user-2222"})
    stolen = run(platform.db.prepare("SELECT value_ciphertext FROM api_keys WHERE user_id = ? AND provider = 'openai'")
                 .bind(keyholder.user_id).first("value_ciphertext"))
    # Swap between rows of one user (openai's ciphertext into the groq row) and between users.
    run(platform.db.prepare("UPDATE api_keys SET value_ciphertext = ? WHERE user_id = ? AND provider = 'groq'")
        .bind(stolen, keyholder.user_id).run())
    run(platform.db.prepare("UPDATE api_keys SET value_ciphertext = ? WHERE user_id = ? AND provider = 'openai'")
        .bind(stolen, other.user_id).run())

    for caller in (keyholder, other):
        response = client.get("/v1/auth/api-keys/values", headers=caller.headers)
        assert_problem(response, 500, "key_unreadable")
        assert OPENAI_KEY not in response.text
    with pytest.raises(api_keys.KeyUnreadable):
        run(api_keys.provider_key(platform, other.user_id, "openai"))
    listed = client.get("/v1/auth/api-keys", headers=other.headers).json()["api_keys"]
    assert listed[0]["key_value"] == "••••••••"


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "OpenAI", "key_value": "x"},
        {"provider": "", "key_value": "x"},
        {"provider": "openai", "key_value": ""},
        {"provider": "openai", "key_value": "has space"},
        {"provider": "openai", "key_value": "x" * 4097},
        {"provider": "openai"},
        {"provider": "openai", "key_value": 5},
        {"provider": "openai", "key_value": "x", "extra": True},
    ],
)
def test_bad_key_input_is_422_and_stores_nothing(client, keyholder, platform, body):
    assert_problem(client.post("/v1/auth/api-keys", headers=keyholder.headers, json=body), 422, "validation_failed")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM api_keys") == 0


# --- abilities: a token without the ability gets 403 `forbidden`, and nothing changes ----------------

ABILITY_MATRIX = [
    ("GET", "/v1/auth/api-keys", None, "keys:write"),
    ("POST", "/v1/auth/api-keys", {"provider": "openai", "key_value": OPENAI_KEY}, "keys:write"),
    ("DELETE", "/v1/auth/api-keys/openai", None, "keys:write"),
    ("GET", "/v1/auth/api-keys/values", None, "secrets:read"),
]


@pytest.mark.parametrize("method, path, body, ability", ABILITY_MATRIX)
def test_abilities_matrix(client, platform, keyholder, method, path, body, ability):
    client.post("/v1/auth/api-keys", headers=keyholder.headers, json={"provider": "openai", "key_value": OPENAI_KEY})
    lacking = make_caller(platform, keyholder.email, abilities=tuple(a for a in ABILITIES if a != ability))
    response = client.request(method, path, headers=lacking.headers, json=body)
    problem = assert_problem(response, 403, "forbidden")
    assert problem["required_ability"] == ability
    assert OPENAI_KEY not in response.text
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM api_keys") == 1
    holder = make_caller(platform, keyholder.email, abilities=(ability,))
    assert client.request(method, path, headers=holder.headers, json=body).status_code == 200


def test_sign_in_tokens_do_not_reveal_secrets_unless_asked(client, platform):
    default = make_caller(platform, "d@example.com", abilities=DEFAULT_ABILITIES)
    assert_problem(client.get("/v1/auth/api-keys/values", headers=default.headers), 403, "forbidden")


# --- fresh session: older than 15 minutes → 403 `reauthentication_required`, nothing changes -------

FRESH_MATRIX = [
    ("POST", "/v1/auth/api-keys", {"provider": "groq", "key_value": "gsk-1234567890"}),
    ("DELETE", "/v1/auth/api-keys/openai", None),
    ("GET", "/v1/auth/api-keys/values", None),
    ("DELETE", "/v1/auth/tokens/{other_token}", None),
    ("DELETE", "/v1/projects/{project}", None),
    ("GET", "/v1/projects/{project}/env-vars/values", None),
]


@pytest.mark.parametrize("method, path, body", FRESH_MATRIX)
def test_fresh_session_matrix(client, platform, clock, keyholder, method, path, body):
    h = keyholder.headers
    client.post("/v1/auth/api-keys", headers=h, json={"provider": "openai", "key_value": OPENAI_KEY})
    project = client.post("/v1/projects", headers=h, json={"name": "p"}).json()["project"]["id"]
    other = make_caller(platform, keyholder.email)
    other_token = next(t["id"] for t in client.get("/v1/auth/tokens", headers=other.headers).json()["tokens"] if t["current"])
    target = path.format(project=project, other_token=other_token)
    before = [count_rows(platform, f"SELECT COUNT(*) AS n FROM {t}") for t in ("api_keys", "projects", "security_events")]
    clock.advance(15 * 60 + 1)

    response = client.request(method, target, headers=h, json=body)
    assert_problem(response, 403, "reauthentication_required")
    assert OPENAI_KEY not in response.text
    after = [count_rows(platform, f"SELECT COUNT(*) AS n FROM {t}") for t in ("api_keys", "projects", "security_events")]
    assert after == before
    assert client.get("/v1/auth/me", headers=other.headers).status_code == 200

    # Signing in again (a new token) re-confirms: the same request now succeeds.
    fresh = make_caller(platform, keyholder.email, abilities=ABILITIES)
    assert client.request(method, target, headers=fresh.headers, json=body).status_code in (200, 204)


def test_fresh_window_is_inclusive_of_fifteen_minutes(client, clock, keyholder):
    clock.advance(15 * 60)
    assert client.get("/v1/auth/api-keys/values", headers=keyholder.headers).status_code == 200
