"""Plan limits enforced where they bite, through the HTTP API: blob, batch and manifest
uploads (storage bytes), new conversations, the AI budget; 402 `plan_limit_reached` with the limit,
the usage and the upgrade path, lifted when Paddle says the user is on a bigger plan."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from fastest.config import Settings
from fastest.domain.manifest import MODE_FILE
from fastest.domain.tree import build_manifests
from fastest.errors import PlanLimitReached
from fastest.services.billing import entitlements
from tests.api.paddle_stub import PRICE_PRO, PRICE_TEAM, WEBHOOK_SECRET, paddle_id
from tests.api.test_billing import deliver, iso_at, paddle_event, subscription_data
from tests.api.test_conversations import new_conversation, prompt, wait_for
from tests.api.trees import new_project, new_workspace
from tests.conftest import assert_problem
from tests.e2e.model_server import ModelServer

PLANS = {"free": {"storage_bytes": 150, "conversations": 1}, "pro": {"storage_bytes": 10_000, "ai_budget_calls": 3}}


@pytest.fixture
def model():
    with ModelServer() as server:
        yield server


@pytest.fixture
def settings(model) -> Settings:
    return Settings(
        paddle_price_pro=PRICE_PRO, paddle_price_team=PRICE_TEAM, paddle_webhook_secrets=WEBHOOK_SECRET,
        billing_plans=json.dumps(PLANS), ai_provider="openai", ai_base_url=model.base_url, ai_model="test-model",
        ai_budget_calls=1, ai_rate_limit_per_minute=100, rate_limit_per_minute=1000,
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def frame(data: bytes) -> bytes:
    return sha(data).encode() + b"%08x" % len(data) + data


def upgrade_to_pro(client, clock, caller) -> None:
    event = paddle_event("subscription.created", subscription_data(caller.user_id, sub_id=paddle_id("sub"), clock=clock),
                         occurred_at=iso_at(clock))
    assert deliver(client, clock, event).json()["outcome"] == "applied"


def assert_limit(response, name: str, limit: int, used: int, adding: int) -> dict:
    body = assert_problem(response, 402, "plan_limit_reached")
    assert body["plan_limit"] == {"plan": "free", "limit_name": name, "limit": limit, "used": used, "adding": adding}
    assert body["upgrade"]["checkout"]["path"] == "/v1/billing/checkout"
    assert "pro" in [p["name"] for p in body["upgrade"]["plans"]]
    return body


def test_storage_bytes_bound_single_batch_and_manifest_uploads(client, alice, clock, platform):
    first = b"a" * 100
    assert client.put(f"/v1/blobs/upload/{sha(first)}", headers=alice.headers, content=first).status_code == 201
    second = b"b" * 100
    assert_limit(client.put(f"/v1/blobs/upload/{sha(second)}", headers=alice.headers, content=second),
                 "storage_bytes", 150, 100, 100)
    # Re-sending what is stored adds nothing and passes.
    assert client.put(f"/v1/blobs/upload/{sha(first)}", headers=alice.headers, content=first).status_code == 200
    batch = frame(b"c" * 30) + frame(b"d" * 30)
    assert_limit(client.post("/v1/blobs/batch", headers=alice.headers, content=batch), "storage_bytes", 150, 100, 60)
    built = build_manifests([("x/big.txt", sha(first), len(first), MODE_FILE)])
    manifest_hash, manifest = next(iter(built.manifests.items()))
    assert len(manifest) > 50
    assert_limit(client.put(f"/v1/blobs/manifests/{manifest_hash}", headers=alice.headers, content=manifest),
                 "storage_bytes", 150, 100, len(manifest))
    assert_limit(client.post("/v1/blobs/manifests/batch", headers=alice.headers, content=frame(manifest)),
                 "storage_bytes", 150, 100, len(manifest))
    # Nothing was stored by the refused requests.
    assert client.get("/v1/blobs/stats", headers=alice.headers).json()["total"]["bytes"] == 100
    upgrade_to_pro(client, clock, alice)
    assert client.put(f"/v1/blobs/upload/{sha(second)}", headers=alice.headers, content=second).status_code == 201
    assert client.post("/v1/blobs/batch", headers=alice.headers, content=batch).json()["stored"]
    assert client.put(f"/v1/blobs/manifests/{manifest_hash}", headers=alice.headers, content=manifest).status_code == 201


def test_new_conversations_are_bounded_by_the_plan(client, alice, bob, clock):
    workspace = new_workspace(client, alice, new_project(client, alice)["id"])
    new_conversation(client, alice, workspace["id"])
    response = client.post("/v1/conversations", headers=alice.headers, json={"workspace_id": workspace["id"]})
    body = assert_limit(response, "conversations", 1, 1, 1)
    assert {"name": "pro", "limit": None} in body["upgrade"]["plans"]
    # Bob's count is his own.
    new_conversation(client, bob, new_workspace(client, bob, new_project(client, bob)["id"])["id"])
    upgrade_to_pro(client, clock, alice)
    new_conversation(client, alice, workspace["id"])


def test_the_ai_budget_follows_the_plan(client, alice, clock):
    workspace = new_workspace(client, alice, new_project(client, alice)["id"])
    cid = new_conversation(client, alice, workspace["id"])["id"]
    prompt(client, alice, cid, "hello")
    wait_for(client, alice, cid, lambda e: e["type"] == "turn.completed")
    response = client.post(f"/v1/conversations/{cid}/messages", headers=alice.headers, json={"prompt": "again"})
    body = assert_problem(response, 429, "ai_rate_limited")
    assert body["ai_rate_limit"]["limit"] == 1 and body["plan"] == "free"
    assert [p["name"] for p in body["upgrade"]["plans"]] == ["pro", "team"]
    upgrade_to_pro(client, clock, alice)
    prompt(client, alice, cid, "again")
    completed = wait_for(client, alice, cid, lambda e: e["type"] == "turn.completed" and e["id"] > 6)
    assert completed[-1]["type"] == "turn.completed"


def test_deployments_limit_is_checked_with_the_count_the_caller_gives(platform, alice):
    async def check(used: int) -> None:
        await entitlements.require(platform, alice.user_id, "deployments", adding=1, used=used)

    asyncio.run(check(2))  # free: 3 deployments
    with pytest.raises(PlanLimitReached) as raised:
        asyncio.run(check(3))
    assert raised.value.extra["plan_limit"]["limit"] == 3
    with pytest.raises(ValueError):
        asyncio.run(entitlements.require(platform, alice.user_id, "deployments"))


def test_the_subscription_view_shows_limits_and_usage(client, alice):
    data = b"z" * 42
    client.put(f"/v1/blobs/upload/{sha(data)}", headers=alice.headers, content=data)
    view = client.get("/v1/billing/subscription", headers=alice.headers).json()
    assert view["plan"] == "free" and view["status"] == "free"
    assert view["entitlements"]["limits"]["storage_bytes"] == 150
    assert view["entitlements"]["usage"] == {"storage_bytes": 42, "conversations": 0}


@pytest.mark.parametrize("settings", [Settings(billing_plans='{"free": {"storage_bytes": null}}')])
def test_the_storage_usage_counter_follows_uploads_and_gc(client, alice, bob, clock, platform, settings):
    from tests.api.trees import upload_tree
    from tests.conftest import count_rows

    def counted(caller) -> int:
        return count_rows(platform, "SELECT COALESCE((SELECT bytes FROM storage_usage WHERE user_id = ?), 0) AS n",
                          caller.user_id)

    def summed(caller) -> int:
        return client.get("/v1/blobs/stats", headers=caller.headers).json()["total"]["bytes"]

    upload_tree(client, alice, {"a.txt": b"alpha" * 10, "d/b.txt": b"beta" * 7})
    upload_tree(client, bob, {"c.txt": b"gamma"})
    assert counted(alice) == summed(alice) > 0 and counted(bob) == summed(bob) > 0
    upload_tree(client, alice, {"a.txt": b"alpha" * 10})  # already stored: nothing added
    assert counted(alice) == summed(alice)
    clock.advance(settings.gc_grace_seconds + 1)
    assert client.post("/v1/blobs/gc", headers=alice.headers, json={"dryRun": False}).status_code == 200
    assert counted(alice) == summed(alice) == 0
    assert counted(bob) == summed(bob) > 0
    upload_tree(client, alice, {"a.txt": b"alpha" * 10})
    assert counted(alice) == summed(alice) > 0


@pytest.mark.parametrize("settings", [Settings()])
def test_recomputing_storage_usage_repairs_a_drifted_counter(client, alice, bob, platform, settings):
    from tests.api.trees import upload_tree
    from tests.conftest import count_rows, run

    upload_tree(client, alice, {"a.txt": b"alpha" * 10})
    right = count_rows(platform, "SELECT bytes AS n FROM storage_usage WHERE user_id = ?", alice.user_id)
    run(platform.db.prepare("UPDATE storage_usage SET bytes = 1 WHERE user_id = ?").bind(alice.user_id).run())

    async def twice():
        return await asyncio.gather(entitlements.recompute_storage_usage(platform),
                                    entitlements.recompute_storage_usage(platform))

    # Alice's counter was wrong; Bob (and the callers' users) get a row at 0 the first time.
    assert sum(asyncio.run(twice())) >= 1
    assert count_rows(platform, "SELECT bytes AS n FROM storage_usage WHERE user_id = ?", alice.user_id) == right
    assert count_rows(platform, "SELECT bytes AS n FROM storage_usage WHERE user_id = ?", bob.user_id) == 0
    assert asyncio.run(entitlements.recompute_storage_usage(platform)) == 0
