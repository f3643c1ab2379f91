"""The cloudflare provider against a loopback stand-in that checks every request's shape: the token is
verified before it is saved (and never shown or stored in clear), D1/KV are provisioned for the
detected needs, the Worker goes up with its static assets (only missing files uploaded), rollback
is one call, resource delete destroys in Cloudflare first, and Cloudflare's error envelope becomes a
failed deployment with Cloudflare's message."""

from __future__ import annotations

import json
import logging

import pytest

from fastest.config import Settings
from tests.api.cloudflare_standin import ACCOUNT, TOKEN, CloudflareStandIn
from tests.api.test_deployments import WORKER, deploy, pushed
from tests.api.trees import snapshot, upload_tree
from tests.conftest import assert_problem, count_rows, run


@pytest.fixture
def cf():
    with CloudflareStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def settings(cf) -> Settings:
    return Settings(cloudflare_api_base=cf.base)


def save(client, caller, token=TOKEN, **metadata):
    return client.post("/v1/infrastructure/credentials", headers=caller.headers,
                       json={"provider": "cloudflare", "api_token": token, "metadata": {"account_id": ACCOUNT, **metadata}})


def test_a_refused_token_is_not_saved(client, alice, cf, platform):
    response = save(client, alice, token="wrong-token")
    body = assert_problem(response, 422, "credential_invalid")
    assert "Invalid API Token" in body["detail"] and "wrong-token" not in response.text
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM provider_credentials") == 0
    assert [c["path"] for c in cf.calls("GET")] == ["/client/v4/user/tokens/verify", f"/client/v4/accounts/{ACCOUNT}/tokens/verify"]
    assert_problem(client.post("/v1/infrastructure/credentials", headers=alice.headers,
                               json={"provider": "cloudflare", "api_token": TOKEN}), 422, "validation_failed")


def test_credentials_are_sealed_listed_without_token_and_deleted(client, alice, bob, cf, platform):
    saved = save(client, alice)
    assert saved.status_code == 200 and saved.json()["success"] and TOKEN not in saved.text
    assert cf.calls("GET", "/user/tokens/verify")[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    listed = client.get("/v1/infrastructure/credentials", headers=alice.headers)
    [credential] = listed.json()["credentials"]
    assert credential["provider"] == "cloudflare" and credential["metadata"]["account_id"] == ACCOUNT
    assert TOKEN not in listed.text and "api_token" not in credential
    assert client.get("/v1/infrastructure/credentials", headers=bob.headers).json() == {"credentials": []}
    assert save(client, alice).json()["id"] == credential["id"]  # update in place
    assert_problem(client.delete("/v1/infrastructure/credentials/cloudflare", headers=bob.headers), 404, "not_found")
    assert client.delete("/v1/infrastructure/credentials/cloudflare", headers=alice.headers).json() == {"success": True}
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM provider_credentials") == 0


def _plain_text_anywhere(platform, needle: str) -> list[str]:
    found = []
    tables = run(platform.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                                     "AND name NOT LIKE '%fts%' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'").all()).results
    for table in tables:
        rows = run(platform.db.prepare(f'SELECT * FROM "{table["name"]}"').all()).results
        for row in rows:
            if any(needle in str(value) for value in row.values()):
                found.append(table["name"])
    return found


def test_deploy_provisions_uploads_assets_and_rolls_back(client, alice, cf, platform, caplog):
    caplog.set_level(logging.DEBUG)
    save(client, alice)
    project, workspace, _, _ = pushed(client, alice, WORKER, name="Shop")
    first = deploy(client, alice, project["id"], provider="cloudflare")
    assert first["status"] == "ready", first
    assert cf.problems == []
    script = f"shop-{project['id'][-8:].lower()}"
    assert first["url"] == f"https://{script}.acme.workers.dev/"
    # Provisioning: a D1 database and a KV namespace named for the project, with Cloudflare's ids kept.
    assert [json.loads(c["body"]) for c in cf.calls("POST", "/d1/database")] == [{"name": f"{script}-main"}]
    assert [json.loads(c["body"]) for c in cf.calls("POST", "/storage/kv/namespaces")] == [{"title": f"{script}-CACHE"}]
    assert sorted((r["type"], r["provider"]) for r in first["provisioned_resources"]) == [("d1", "cloudflare"), ("kv", "cloudflare")]
    # The Worker's metadata: module, date from wrangler.toml, bindings to what was provisioned, assets JWT.
    metadata = cf.scripts[script][-1]["metadata"]
    assert metadata["compatibility_date"] == "2025-01-01" and metadata["main_module"]
    bindings = {b["name"]: b for b in metadata["bindings"]}
    d1 = next(r for r in first["resources"] if r["type"] == "d1")
    assert bindings["DB"] == {"type": "d1", "name": "DB", "id": d1["external_id"]}
    assert bindings["CACHE"]["type"] == "kv_namespace" and bindings["ASSETS"] == {"type": "assets", "name": "ASSETS"}
    assert cf.assets and list(cf.assets.values()) == [WORKER["public/index.html"]]
    assert len(cf.calls("POST", "/workers/assets/upload")) == 1

    # One changed file: one asset uploaded, one new version.
    files = {**WORKER, "public/index.html": b"<h1>v2</h1>", "public/about.html": WORKER["public/index.html"]}
    root = upload_tree(client, alice, files)
    snapshot(client, alice, project["id"], root, workspace_id=workspace["id"])
    uploads_before = len(cf.calls("POST", "/workers/assets/upload"))
    second = deploy(client, alice, project["id"], provider="cloudflare")
    assert second["status"] == "ready" and second["provisioned_resources"] == []
    upload_calls = cf.calls("POST", "/workers/assets/upload")[uploads_before:]
    assert len(upload_calls) == 1 and upload_calls[0]["body"].count(b"Content-Disposition") == 1
    logs = client.get(f"/v1/infrastructure/deployments/{second['deployment_id']}/logs", headers=alice.headers).json()["logs"]
    assert any("1 of 2 files uploaded" in line["message"] for line in logs)
    assert len(cf.scripts[script]) == 2

    rolled = client.post(f"/v1/infrastructure/deployments/{first['deployment_id']}/rollback", headers=alice.headers)
    assert rolled.status_code == 200 and rolled.json()["deployment"]["status"] == "ready"
    assert cf.live[script] == cf.scripts[script][0]["id"]
    assert cf.problems == []

    # The token is nowhere in clear: not in any table, any log line, any response, any server log.
    assert _plain_text_anywhere(platform, TOKEN) == []
    assert TOKEN not in caplog.text
    assert TOKEN not in json.dumps([first, second, rolled.json()])


def test_resource_delete_destroys_in_cloudflare_first(client, alice, cf, platform):
    save(client, alice)
    project, _, _, _ = pushed(client, alice, WORKER)
    result = deploy(client, alice, project["id"], provider="cloudflare")
    kv = next(r for r in result["resources"] if r["type"] == "kv")
    cf.fail["/storage/kv/namespaces/"] = (500, 10013, "internal error deleting namespace")
    refused = client.delete(f"/v1/infrastructure/projects/{project['id']}/resources/{kv['id']}", headers=alice.headers)
    assert_problem(refused, 503, "provider_error")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM resources WHERE id = ?", kv["id"]) == 1
    cf.fail.clear()
    done = client.delete(f"/v1/infrastructure/projects/{project['id']}/resources/{kv['id']}", headers=alice.headers)
    assert done.json() == {"success": True}
    assert cf.calls("DELETE")[-1]["path"] == f"/client/v4/accounts/{ACCOUNT}/storage/kv/namespaces/{kv['external_id']}"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM resources WHERE id = ?", kv["id"]) == 0


def test_cloudflare_error_envelope_fails_the_deployment_with_its_message(client, alice, cf):
    save(client, alice)
    project, _, _, _ = pushed(client, alice, {"index.html": b"<h1>x</h1>"})
    cf.fail["/workers/scripts/"] = (400, 10021, "Uncaught Error: script too large")
    result = deploy(client, alice, project["id"], provider="cloudflare")
    assert result["status"] == "failed" and not result["success"]
    assert "Uncaught Error: script too large (10021)" in result["error"]
    logs = client.get(f"/v1/infrastructure/deployments/{result['deployment_id']}/logs", headers=alice.headers).json()["logs"]
    assert "script too large" in logs[-1]["message"]

    cf.fail.clear()
    cf.fail["/d1/database"] = (403, 10000, "Authentication error")
    worker = pushed(client, alice, WORKER, name="W")[0]
    failed = deploy(client, alice, worker["id"], provider="cloudflare")
    assert failed["status"] == "failed" and "Provisioning failed" in failed["error"] and "Authentication error" in failed["error"]


def test_credential_writes_need_a_fresh_session(client, alice, clock, platform):
    clock.advance(16 * 60)
    assert_problem(save(client, alice), 403, "reauthentication_required")
    assert_problem(client.delete("/v1/infrastructure/credentials/cloudflare", headers=alice.headers), 403,
                   "reauthentication_required")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM provider_credentials") == 0
