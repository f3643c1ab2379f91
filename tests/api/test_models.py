"""Which model answers for a user: their own stored key for the configured provider wins."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from fastest.services.ai import models
from tests.conftest import run


@pytest.mark.parametrize("settings", [Settings(ai_provider="openai", ai_model="m", ai_api_key="sk-server")])
def test_a_users_stored_key_wins_over_the_servers(client, alice, bob, platform, settings):
    stored = client.post("/v1/auth/api-keys", headers=alice.headers, json={"provider": "openai", "key_value": "sk-alice"})
    assert stored.status_code in (200, 201), stored.text
    assert run(models.for_user(platform, alice.user_id))._api_key == "sk-alice"
    assert run(models.for_user(platform, bob.user_id))._api_key == "sk-server"


def test_without_a_configured_model_it_is_the_builtin_engine(platform, alice):
    model = run(models.for_user(platform, alice.user_id))
    assert model.provider == "builtin" and not models.is_model(model)
