"""The cloudflare provider against a loopback stand-in that judges every request by Cloudflare's
rules: the token is verified before it is saved (and never shown or stored in clear), D1/KV are
provisioned for the detected needs, a Worker goes up with its code (modules, bindings, compatibility
flags) and its static assets (keyed and typed as wrangler keys and types them, only what Cloudflare
lacks, `_headers`/`_redirects` in the configuration), a later deploy is a new version deployed at
100%, rollback is one call, 429s and 502s are retried, a deploy that stopped half-way resumes without
sending again what Cloudflare has, and Cloudflare's errors fail the deployment with their code."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from fastest.config import Settings
from tests.api.cloudflare_standin import ACCOUNT, TOKEN, CloudflareStandIn, wrangler_key
from tests.api.test_deployments import deploy, pushed
from tests.api.trees import upload_tree
from tests.conftest import assert_problem, count_rows, run

WRANGLER_TOML = (b'name = "shop"\nmain = "src/index.ts"\ncompatibility_date = "2025-06-01"\n'
                 b'compatibility_flags = ["nodejs_compat"]\n'
                 b'[vars]\nGREETING = "hello"\n'
                 b'[assets]\ndirectory = "public"\nbinding = "ASSETS"\nnot_found_handling = "single-page-application"\n'
                 b'[[d1_databases]]\nbinding = "DB"\ndatabase_name = "main"\ndatabase_id = "x"\n'
                 b'[[kv_namespaces]]\nbinding = "CACHE"\nid = "y"\n')
SOURCE = {
    "wrangler.toml": WRANGLER_TOML,
    "src/index.ts": b"export default { fetch: (r: Request, env: any) => env.ASSETS.fetch(r) };\n",
    "public/index.html": "<h1>héllo</h1>".encode(),
    "public/same.html": b"same",
    "public/same.txt": b"same",
    "public/data.unknownext": b"\x00\x01",
    "public/_headers": b"/*\n  X-Frame-Options: DENY\n",
    "public/_redirects": b"/old /new 301\n",
    "public/.assetsignore": b"private.txt\n",
    "public/private.txt": b"not for the web",
}
BUNDLE = b"var index_default = { fetch: (r, env) => env.ASSETS.fetch(r) };\nexport { index_default as default };\n"


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


def output_of(files: dict, bundle: bytes | None) -> dict:
    """The output tree `fastest deploy` uploads: the assets directory, and the bundle under .worker/."""
    output = {path.removeprefix("public/"): data for path, data in files.items() if path.startswith("public/")}
    if bundle is not None:
        output[".worker/index.js"] = bundle
    return output


def deploy_built(client, caller, project, files: dict, bundle: bytes | None = BUNDLE) -> dict:
    output = upload_tree(client, caller, output_of(files, bundle))
    return deploy(client, caller, project["id"], provider="cloudflare", output_manifest_hash=output, build="none")


def logs_of(client, caller, deployment_id: str) -> list[str]:
    answer = client.get(f"/v1/infrastructure/deployments/{deployment_id}/logs", headers=caller.headers).json()
    return [line["message"] for line in answer["logs"]]


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


def test_a_worker_deploys_with_its_code_bindings_and_assets_then_new_versions(client, alice, cf, platform, caplog):
    caplog.set_level(logging.DEBUG)
    save(client, alice)
    project, workspace, _, _ = pushed(client, alice, SOURCE, name="Shop")
    first = deploy_built(client, alice, project, SOURCE)
    assert first["status"] == "ready", first
    assert cf.problems == []
    script = f"shop-{project['id'][-8:].lower()}"
    assert first["url"] == f"https://{script}.acme.workers.dev/"
    # Provisioning: a D1 database and a KV namespace named for the project, with Cloudflare's ids kept.
    assert [json.loads(c["body"]) for c in cf.calls("POST", "/d1/database")] == [{"name": f"{script}-main"}]
    assert [json.loads(c["body"]) for c in cf.calls("POST", "/storage/kv/namespaces")] == [{"title": f"{script}-CACHE"}]
    # The Worker: its bundled module, its date and flags, its bindings, the assets' configuration.
    [version] = cf.scripts[script]
    metadata = version["metadata"]
    assert metadata["main_module"] == "index.js"
    assert version["modules"] == {"index.js": ("application/javascript+module", BUNDLE)}
    assert metadata["compatibility_date"] == "2025-06-01" and metadata["compatibility_flags"] == ["nodejs_compat"]
    bindings = {b["name"]: b for b in metadata["bindings"]}
    d1 = next(r for r in first["resources"] if r["type"] == "d1")
    assert bindings["DB"] == {"type": "d1", "name": "DB", "id": d1["external_id"]}
    assert bindings["CACHE"]["type"] == "kv_namespace" and bindings["ASSETS"] == {"type": "assets", "name": "ASSETS"}
    assert bindings["GREETING"] == {"type": "plain_text", "name": "GREETING", "text": "hello"}
    assert metadata["assets"]["config"] == {"not_found_handling": "single-page-application",
                                            "_headers": "/*\n  X-Frame-Options: DENY\n", "_redirects": "/old /new 301\n"}
    # The assets: keyed per extension (same bytes, two assets, each with its type), text in UTF-8,
    # no Content-Type for an unknown extension, nothing that .assetsignore lists or that is configuration.
    assert sorted(version["assets"]) == ["/data.unknownext", "/index.html", "/same.html", "/same.txt"]
    assert cf.served_type("same.html", script) == "text/html; charset=utf-8"
    assert cf.served_type("same.txt", script) == "text/plain; charset=utf-8"
    assert cf.served_type("data.unknownext", script) is None
    assert len(cf.assets) == 4 and b"not for the web" not in cf.assets.values()
    # The version serving is the one the upload answered, made live by the upload itself.
    row = run(platform.db.prepare("SELECT provider_version FROM deployments WHERE id = ?").bind(first["deployment_id"]).first())
    assert row["provider_version"] == cf.live[script] == version["id"]
    assert cf.workers_dev[script] is True

    # A change to the code alone: a new version uploaded and deployed at 100%, no asset sent.
    uploads_before = len(cf.calls("POST", "/workers/assets/upload"))
    second = deploy_built(client, alice, project, SOURCE, bundle=BUNDLE.replace(b"fetch", b"fetch "))
    assert second["status"] == "ready" and second["provisioned_resources"] == []
    assert len(cf.calls("POST", "/workers/assets/upload")) == uploads_before
    assert len(cf.calls("POST", f"/workers/scripts/{script}/versions")) == 1
    assert cf.live[script] == cf.scripts[script][1]["id"]
    said = logs_of(client, alice, second["deployment_id"])
    assert any("all 4 files already on Cloudflare" in line for line in said)
    assert f"Worker {script}: 1 module(s), main index.js; version {cf.live[script]} uploaded and deployed at 100%" in said

    rolled = client.post(f"/v1/infrastructure/deployments/{first['deployment_id']}/rollback", headers=alice.headers)
    assert rolled.status_code == 200 and rolled.json()["deployment"]["status"] == "ready"
    assert cf.live[script] == cf.scripts[script][0]["id"]
    assert cf.problems == []

    # The token is nowhere in clear: not in any table, any log line, any response, any server log.
    assert _plain_text_anywhere(platform, TOKEN) == []
    assert TOKEN not in caplog.text
    assert TOKEN not in json.dumps([first, second, rolled.json()])


def test_a_static_site_is_an_assets_only_worker(client, alice, cf):
    save(client, alice)
    files = {"index.html": b"<h1>hi</h1>", "about/index.html": b"<h1>about</h1>", "app.js": b"1",
             "logo.svg": b"<svg/>", ".env": b"SECRET=1"}
    project, _, _, _ = pushed(client, alice, files, name="Plain")
    result = deploy(client, alice, project["id"], provider="cloudflare")
    assert result["status"] == "ready", result
    script = f"plain-{project['id'][-8:].lower()}"
    [version] = cf.scripts[script]
    assert "main_module" not in version["metadata"] and version["modules"] == {}
    assert sorted(version["assets"]) == ["/about/index.html", "/app.js", "/index.html", "/logo.svg"]
    assert cf.served_type("app.js", script) == "text/javascript; charset=utf-8"
    assert cf.served_type("logo.svg", script) == "image/svg+xml"
    assert cf.problems == []


def test_a_python_worker_uploads_its_modules_as_wrangler_does(client, alice, cf):
    save(client, alice)
    files = {
        "wrangler.toml": b'name = "py"\nmain = "src/entry.py"\ncompatibility_date = "2026-04-21"\n'
                         b'compatibility_flags = ["python_workers"]\n',
        "src/entry.py": b"from workers import WorkerEntrypoint, Response\n",
        "src/app/__init__.py": b"x = 1\n",
        "src/app/page.html": b"<p>page</p>",
        "src/app/notes.md": b"not a module",
        "python_modules/lib/mod.py": b"v = 1\n",
        "python_modules/workers/shim.js": b"export const a = 1;\n",
        "README.md": b"# py",
    }
    project, _, _, _ = pushed(client, alice, files, name="Py")
    result = deploy(client, alice, project["id"], provider="cloudflare")
    assert result["status"] == "ready", result
    [version] = cf.scripts[f"py-{project['id'][-8:].lower()}"]
    assert version["metadata"]["main_module"] == "entry.py" and "assets" not in version["metadata"]
    assert {name: kind for name, (kind, _) in version["modules"].items()} == {
        "entry.py": "text/x-python", "app/__init__.py": "text/x-python", "app/page.html": "text/plain",
        "python_modules/lib/mod.py": "application/octet-stream",
        "python_modules/workers/shim.js": "application/javascript+module",
    }
    assert cf.problems == []


def test_asset_buckets_upload_in_parallel_three_at_a_time(client, alice, cf):
    save(client, alice)
    files = {"index.html": b"<h1>many</h1>", **{f"page{n:02d}.html": f"<p>{n}</p>".encode() for n in range(15)}}
    project, _, _, _ = pushed(client, alice, files, name="Many")
    cf.upload_delay = 0.2
    result = deploy(client, alice, project["id"], provider="cloudflare")
    assert result["status"] == "ready", result
    assert len(cf.calls("POST", "/workers/assets/upload")) == 8  # the stand-in's buckets hold two files
    assert cf.most_uploads_in_flight == 3
    assert len(cf.assets) == 16 and cf.problems == []


def test_429_and_502_are_retried_until_the_deploy_succeeds(client, alice, cf):
    save(client, alice)
    project, _, _, _ = pushed(client, alice, SOURCE, name="Shop")
    cf.flake("POST", "/assets-upload-session", 429, retry_after="0")
    cf.flake("POST", "/workers/assets/upload", 429, retry_after="0")
    cf.flake("PUT", "/workers/scripts/", 502)
    cf.flake("GET", "/workers/subdomain", 503, retry_after="0")
    result = deploy_built(client, alice, project, SOURCE)
    assert result["status"] == "ready", result
    assert len(cf.calls("POST", "/assets-upload-session")) == 2
    assert len(cf.calls("PUT", "/workers/scripts/")) == 2
    assert cf.problems == []


def test_a_deploy_that_stopped_half_way_resumes_without_sending_assets_again(client, alice, cf):
    save(client, alice)
    project, _, _, _ = pushed(client, alice, SOURCE, name="Shop")
    # The bucket holding same.txt keeps failing (every try), the other gets through: the deploy fails.
    stuck = wrangler_key(base64.b64encode(b"same"), "same.txt")
    for _ in range(5):
        cf.flake("POST", "/workers/assets/upload", 502, retry_after="0", body_has=f'name="{stuck}"'.encode())
    failed = deploy_built(client, alice, project, SOURCE)
    assert failed["status"] == "failed" and "[code: 10013]" in failed["error"]
    kept = set(cf.assets)
    assert len(kept) == 2 and stuck not in kept
    sent_before = len(cf.calls("POST", "/workers/assets/upload"))
    again = deploy_built(client, alice, project, SOURCE)
    assert again["status"] == "ready", again
    resent = cf.calls("POST", "/workers/assets/upload")[sent_before:]
    assert len(resent) == 1 and f'name="{stuck}"'.encode() in resent[0]["body"]
    assert not any(f'name="{key}"'.encode() in resent[0]["body"] for key in kept)
    # A Worker upload refused after the assets went up: the next deploy uploads no asset at all.
    cf.flake("POST", "/versions", 400)
    changed = {**SOURCE, "public/new.txt": b"new"}
    assert deploy_built(client, alice, project, changed)["status"] == "failed"
    uploads = len(cf.calls("POST", "/workers/assets/upload"))
    assert deploy_built(client, alice, project, changed)["status"] == "ready"
    assert len(cf.calls("POST", "/workers/assets/upload")) == uploads
    assert cf.problems == []


def test_without_a_workers_dev_subdomain_the_deploy_says_how_to_get_one(client, alice, cf):
    save(client, alice)
    cf.subdomain = None
    project, _, _, _ = pushed(client, alice, {"index.html": b"<h1>x</h1>"})
    result = deploy(client, alice, project["id"], provider="cloudflare")
    assert result["status"] == "failed"
    assert "no workers.dev subdomain yet" in result["error"]
    assert f"https://dash.cloudflare.com/{ACCOUNT}/workers/onboarding" in result["error"]


def test_a_worker_whose_code_was_not_bundled_fails_clearly(client, alice, cf):
    save(client, alice)
    project, _, _, _ = pushed(client, alice, SOURCE, name="Shop")
    result = deploy(client, alice, project["id"], provider="cloudflare")
    assert result["status"] == "failed"
    assert "src/index.ts" in result["error"] and "fastest deploy" in result["error"]
    assert cf.calls("PUT", "/workers/scripts/") == [] and cf.calls("POST", "/versions") == []


def test_a_pages_worker_among_the_assets_is_refused(client, alice, cf):
    save(client, alice)
    project, _, _, _ = pushed(client, alice, {"index.html": b"<h1>x</h1>", "_worker.js": b"secret()"})
    result = deploy(client, alice, project["id"], provider="cloudflare")
    assert result["status"] == "failed" and "_worker.js" in result["error"] and ".assetsignore" in result["error"]
    assert cf.assets == {}


def test_resource_delete_destroys_in_cloudflare_first(client, alice, cf, platform):
    save(client, alice)
    project, _, _, _ = pushed(client, alice, SOURCE)
    result = deploy_built(client, alice, project, SOURCE)
    kv = next(r for r in result["resources"] if r["type"] == "kv")
    cf.fail["/storage/kv/namespaces/"] = (400, 10013, "namespace is in use")
    refused = client.delete(f"/v1/infrastructure/projects/{project['id']}/resources/{kv['id']}", headers=alice.headers)
    assert_problem(refused, 503, "provider_error")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM resources WHERE id = ?", kv["id"]) == 1
    cf.fail.clear()
    done = client.delete(f"/v1/infrastructure/projects/{project['id']}/resources/{kv['id']}", headers=alice.headers)
    assert done.json() == {"success": True}
    assert cf.calls("DELETE")[-1]["path"] == f"/client/v4/accounts/{ACCOUNT}/storage/kv/namespaces/{kv['external_id']}"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM resources WHERE id = ?", kv["id"]) == 0


def test_cloudflare_errors_fail_the_deployment_with_their_code_and_never_the_token(client, alice, cf):
    save(client, alice)
    project, _, _, _ = pushed(client, alice, {"index.html": b"<h1>x</h1>"})
    cf.fail["/workers/scripts/"] = (400, 10021, f"Uncaught Error: script too large (token {TOKEN})")
    result = deploy(client, alice, project["id"], provider="cloudflare")
    assert result["status"] == "failed" and not result["success"]
    assert "Uncaught Error: script too large" in result["error"] and "[code: 10021]" in result["error"]
    assert TOKEN not in json.dumps(result)
    logs = logs_of(client, alice, result["deployment_id"])
    assert "script too large" in logs[-1] and TOKEN not in json.dumps(logs)

    cf.fail.clear()
    cf.fail["/d1/database"] = (403, 10000, "Authentication error")
    worker = pushed(client, alice, SOURCE, name="W")[0]
    failed = deploy(client, alice, worker["id"], provider="cloudflare")
    assert failed["status"] == "failed" and "Provisioning failed" in failed["error"]
    assert "Authentication error [code: 10000]" in failed["error"]


def test_credential_writes_need_a_fresh_session(client, alice, clock, platform):
    clock.advance(16 * 60)
    assert_problem(save(client, alice), 403, "reauthentication_required")
    assert_problem(client.delete("/v1/infrastructure/credentials/cloudflare", headers=alice.headers), 403,
                   "reauthentication_required")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM provider_credentials") == 0
