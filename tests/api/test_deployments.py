"""Deployments through HTTP: detect, deploy with the runtime's own provider (tests/api/deploy_target.py:
local, or Cloudflare's API on the Worker), settings, history, logs, the signed status callback,
rollback, resources, auto-deploy and cross-user 404s; and the local server serving the sites by host
and by path."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from fastest.api.deploy_sites import DeploymentSites
from fastest.app import create_app
from tests.api.deploy_target import alice, bob  # noqa: F401 (the callers, able to deploy)
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.conftest import assert_problem, count_rows, make_caller, run

SITE = {
    "index.html": b"<!doctype html><link rel=stylesheet href=/css/site.css><h1>Hello</h1>",
    "css/site.css": b"h1 { color: red }",
    "about/index.html": b"<h1>About</h1>",
    "docs.html": b"<h1>Docs</h1>",
    "404.html": b"<h1>Lost</h1>",
    "img/logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
}
HIDDEN = {".env": b"SECRET=1", ".secrets/config": b"[core]", ".well-known/security.txt": b"Contact: x"}
WORKER = {
    "wrangler.toml": b'name = "w"\ncompatibility_date = "2025-01-01"\n[assets]\ndirectory = "./public"\n'
                     b'[[d1_databases]]\nbinding = "DB"\ndatabase_name = "main"\ndatabase_id = "x"\n'
                     b'[[kv_namespaces]]\nbinding = "CACHE"\nid = "y"\n',
    "public/index.html": b"<h1>worker site</h1>",
    ".env.example": b"API_KEY=\n",
}


@pytest.fixture
def sites(platform):
    app = DeploymentSites(create_app(lambda scope: platform), lambda scope: platform)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def pushed(client, caller, files, name="Site"):
    project = new_project(client, caller, name)
    workspace = new_workspace(client, caller, project["id"])
    root = upload_tree(client, caller, files)
    snap = snapshot(client, caller, project["id"], root, workspace_id=workspace["id"])
    return project, workspace, root, snap


def deploy(client, caller, project_id, **body):
    response = client.post(f"/v1/infrastructure/projects/{project_id}/deploy", headers=caller.headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def event_types(client, caller, project_id):
    events = client.get(f"/v1/projects/{project_id}/events?limit=100", headers=caller.headers).json()["events"]
    return [e["type"] for e in reversed(events)]


def test_detect_reports_framework_resources_and_env_with_evidence(client, alice):
    project, _, root, _ = pushed(client, alice, WORKER)
    body = client.get(f"/v1/infrastructure/projects/{project['id']}/detect", headers=alice.headers).json()
    assert body["detection"]["framework"] == "worker" and body["detection"]["output_dir"] == "public"
    assert body["detection"]["manifest_hash"] == root
    assert [(r["type"], r["evidence"]) for r in body["requirements"]["resources"]] == [
        ("d1", ["wrangler.toml"]), ("kv", ["wrangler.toml"])]
    assert body["requirements"]["env_vars"] == [{"name": "API_KEY", "evidence": [".env.example"]}]
    assert [s["type"] for s in body["suggested_resources"]] == ["d1", "kv"]
    other = client.get(f"/v1/infrastructure/projects/{project['id']}/detect?manifest_hash={'0' * 64}", headers=alice.headers)
    assert_problem(other, 404, "not_found")


def test_a_deploy_goes_live_with_its_files_events_and_logs(client, alice, deploy_target):
    project, workspace, root, snap = pushed(client, alice, {**SITE, **HIDDEN})
    result = deploy(client, alice, project["id"])
    assert result["success"] and result["status"] == "ready" and result["error"] is None, result
    deployment = result["deployment"]
    assert deployment["snapshot_id"] == snap["id"] and deployment["workspace_id"] == workspace["id"]
    assert deployment["provider"] == deploy_target.provider
    assert result["url"] == deployment["url"] == deploy_target.site_url(deployment, project)
    for path, content in SITE.items():
        assert deploy_target.serves(result["url"], f"/{path}") == content, path
    assert deploy_target.serves(result["url"], "/") == SITE["index.html"]
    # Hidden files are not published (a plain site deploys its folder as is).
    assert deploy_target.serves(result["url"], "/.env") is None
    assert deploy_target.serves(result["url"], "/.secrets/config") is None
    assert event_types(client, alice, project["id"])[-2:] == ["deployment.started", "deployment.ready"]
    logs = client.get(f"/v1/infrastructure/deployments/{deployment['id']}/logs", headers=alice.headers).json()
    assert logs["status"] == "ready" and any(f"Live at {result['url']}" in line["message"] for line in logs["logs"])
    later = client.get(f"/v1/infrastructure/deployments/{deployment['id']}/logs?after={logs['next_after']}",
                       headers=alice.headers).json()
    assert later["logs"] == []


def test_the_local_server_serves_every_file_by_host_and_by_path(client, sites, alice):
    project, workspace, root, snap = pushed(client, alice, {**SITE, **HIDDEN})
    deployment = deploy(client, alice, project["id"])["deployment"]
    slug = deployment["id"].lower().replace("_", "-")
    assert deployment["fallback_url"].endswith(f"/_deployments/{slug}/")
    for path, content in SITE.items():
        by_host = sites.get(f"/{path}", headers={"host": f"{slug}.localhost:8787"})
        assert by_host.status_code == 200 and by_host.content == content
        by_path = sites.get(f"/_deployments/{slug}/{path}")
        assert by_path.status_code == 200 and by_path.content == content
    root_page = sites.get("/", headers={"host": f"{slug}.localhost"})
    assert root_page.content == SITE["index.html"] and root_page.headers["content-type"].startswith("text/html")
    assert sites.get("/about/", headers={"host": f"{slug}.localhost"}).content == SITE["about/index.html"]
    assert sites.get("/about", headers={"host": f"{slug}.localhost"}).content == SITE["about/index.html"]
    assert sites.get("/docs", headers={"host": f"{slug}.localhost"}).content == SITE["docs.html"]
    # Hidden files are not published (a plain site deploys its folder as is); .well-known is.
    assert sites.get("/.env", headers={"host": f"{slug}.localhost"}).status_code == 404
    assert sites.get(f"/_deployments/{slug}/.secrets/config").status_code == 404
    assert sites.get("/.well-known/security.txt", headers={"host": f"{slug}.localhost"}).content == b"Contact: x"
    missing = sites.get("/nope", headers={"host": f"{slug}.localhost"})
    assert missing.status_code == 404 and missing.content == SITE["404.html"]
    etag = root_page.headers["etag"]
    assert sites.get("/", headers={"host": f"{slug}.localhost", "if-none-match": etag}).status_code == 304
    assert sites.get(f"/_deployments/{slug}", follow_redirects=False).status_code == 308
    assert sites.post("/", headers={"host": f"{slug}.localhost"}).status_code == 405
    # The API on the main host is not shadowed, and an unknown site is a 404.
    assert sites.get("/health").status_code == 200
    assert sites.get("/health", headers={"host": f"{slug}.localhost"}).status_code == 404
    assert sites.get("/", headers={"host": "dep-00000000000000000000000000.localhost"}).status_code == 404


def test_workspace_deploy_and_history(client, alice):
    project, workspace, _, _ = pushed(client, alice, SITE)
    first = client.post(f"/v1/workspaces/{workspace['id']}/deploy", headers=alice.headers)
    assert first.status_code == 200 and first.json()["status"] == "ready"
    second = client.post(f"/v1/workspaces/{workspace['id']}/deploy", headers=alice.headers).json()
    history = client.get(f"/v1/infrastructure/workspaces/{workspace['id']}/deployments?limit=1", headers=alice.headers).json()
    assert [d["id"] for d in history["deployments"]] == [second["deployment_id"]] and history["next_cursor"]
    rest = client.get(f"/v1/infrastructure/workspaces/{workspace['id']}/deployments?cursor={history['next_cursor']}",
                      headers=alice.headers).json()
    assert [d["id"] for d in rest["deployments"]] == [first.json()["deployment_id"]]
    keys = set(history["deployments"][0])
    assert {"id", "workspace_id", "project_id", "snapshot_id", "status", "trigger", "url", "error", "started_at",
            "completed_at"} <= keys


def test_a_project_that_needs_a_build_fails_clearly_when_the_server_does_not_build(client, alice):
    files = {"package.json": json.dumps({"scripts": {"build": "vite build"}, "devDependencies": {"vite": "5"}}).encode(),
             "index.html": b"<div id=app>", "src/main.js": b"console.log(1)"}
    project, _, _, _ = pushed(client, alice, files)
    result = deploy(client, alice, project["id"])
    assert result["status"] == "failed" and not result["success"]
    assert "needs a build (npm run build)" in result["error"] and "fastest deploy" in result["error"]
    assert event_types(client, alice, project["id"])[-2:] == ["deployment.started", "deployment.failed"]


def test_a_worker_project_provisions_its_resources_masked(client, alice, platform, deploy_target):
    project, _, _, _ = pushed(client, alice, WORKER)
    result = deploy(client, alice, project["id"])
    assert result["status"] == "ready", result
    assert sorted((r["type"], r["name"]) for r in result["provisioned_resources"]) == [("d1", "main"), ("kv", "CACHE")]
    listed = client.get(f"/v1/infrastructure/projects/{project['id']}/resources", headers=alice.headers).json()["resources"]
    assert all(set(r["connection_info"].values()) <= {"••••••••"} for r in listed)
    assert "sqlite" not in json.dumps(listed)
    again = deploy(client, alice, project["id"])
    assert again["provisioned_resources"] == [] and len(again["resources"]) == 2
    d1 = next(r for r in listed if r["type"] == "d1")
    one = client.get(f"/v1/infrastructure/projects/{project['id']}/resources/{d1['id']}", headers=alice.headers)
    assert one.json()["resource"]["id"] == d1["id"]
    assert deploy_target.holds(d1)
    deleted = client.delete(f"/v1/infrastructure/projects/{project['id']}/resources/{d1['id']}", headers=alice.headers)
    assert deleted.json() == {"success": True} and not deploy_target.holds(d1)
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM resources WHERE id = ?", d1["id"]) == 0


def test_settings_roundtrip_and_output_dir_override(client, alice):
    files = {"site/index.html": b"<h1>in a folder</h1>", "README.md": b"# x"}
    project, workspace, _, _ = pushed(client, alice, files)
    url = f"/v1/infrastructure/workspaces/{workspace['id']}/deployment-settings"
    default = client.get(url, headers=alice.headers).json()["settings"]
    assert default["auto_deploy"] is False and default["build_command"] is None
    assert deploy(client, alice, project["id"])["status"] == "failed"  # nothing recognisable at the root
    updated = client.put(url, headers=alice.headers, json={"output_dir": "site", "auto_deploy": True}).json()["settings"]
    assert updated["output_dir"] == "site" and updated["auto_deploy"] is True
    assert client.put(url, headers=alice.headers, json={"auto_deploy": "yes"}).status_code == 422
    assert client.put(url, headers=alice.headers, json={"provider": "heroku"}).status_code == 422
    assert deploy(client, alice, project["id"])["status"] == "ready"


def test_client_build_callbacks_move_forward_only_and_tokens_work_once(client, alice, platform):
    project, workspace, _, _ = pushed(client, alice, {"package.json": b'{"scripts":{"build":"x"},"devDependencies":{"vite":"5"}}'})
    started = deploy(client, alice, project["id"], build="client")
    assert started["status"] == "queued" and started["callback_token"].startswith("dct.")
    deployment_id, token = started["deployment_id"], started["callback_token"]
    url = f"/v1/infrastructure/deployments/{deployment_id}/status"

    def call(token, **body):
        return client.post(url, headers={"X-Deploy-Token": token}, json=body)

    # A user's bearer token, a forged token, another deployment's token: 401, nothing changes.
    assert_problem(client.post(url, headers=alice.headers, json={"status": "building"}), 401, "invalid_callback_token")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_problem(call(forged, status="building"), 401, "invalid_callback_token")
    building = call(token, status="building", log=["$ npm run build", "vite v5 building"])
    assert building.status_code == 200 and building.json()["status"] == "building"
    # Replaying the spent token changes nothing.
    assert_problem(call(token, status="failed", error="x"), 401, "invalid_callback_token")
    token = building.json()["next_token"]
    more = call(token, status="building", log=["✓ 3 modules transformed"])
    token = more.json()["next_token"]
    # Backwards: 409, and the token is not spent.
    assert_problem(call(token, status="queued"), 409, "invalid_transition")
    logs = client.get(f"/v1/infrastructure/deployments/{deployment_id}/logs", headers=alice.headers).json()
    assert logs["status"] == "building"
    assert [line["message"] for line in logs["logs"]][-3:] == ["$ npm run build", "vite v5 building", "✓ 3 modules transformed"]
    output = upload_tree(client, alice, {"index.html": b"<h1>built</h1>"})
    done = call(token, status="deploying", output_manifest_hash=output, log=["build done"])
    assert done.status_code == 200 and done.json()["status"] == "ready" and done.json()["next_token"] is None
    row = client.get(f"/v1/infrastructure/deployments/{deployment_id}", headers=alice.headers).json()["deployment"]
    assert row["status"] == "ready" and row["url"]
    types = event_types(client, alice, project["id"])
    assert types[-4:] == ["deployment.started", "build.started", "build.completed", "deployment.ready"]
    assert_problem(call(done.json()["next_token"] or token, status="failed"), 401, "invalid_callback_token")


def test_client_build_failure_records_build_failed(client, alice):
    project, _, _, _ = pushed(client, alice, {"index.html": b"x"})
    started = deploy(client, alice, project["id"], build="client")
    url = f"/v1/infrastructure/deployments/{started['deployment_id']}/status"
    token = client.post(url, headers={"X-Deploy-Token": started["callback_token"]}, json={"status": "building"}).json()["next_token"]
    failed = client.post(url, headers={"Authorization": f"Bearer {token}"},
                         json={"status": "failed", "error": "build exited 1", "log": ["Error: missing module"]})
    assert failed.json()["status"] == "failed"
    row = client.get(f"/v1/infrastructure/deployments/{started['deployment_id']}", headers=alice.headers).json()["deployment"]
    assert row["error"] == "build exited 1" and row["completed_at"]
    assert event_types(client, alice, project["id"])[-3:] == ["build.started", "build.failed", "deployment.failed"]


def test_rollback_makes_the_earlier_output_live_again(client, alice, deploy_target):
    project, workspace, _, _ = pushed(client, alice, {"index.html": b"v1"})
    first = deploy(client, alice, project["id"])
    root2 = upload_tree(client, alice, {"index.html": b"v2"})
    snapshot(client, alice, project["id"], root2, workspace_id=workspace["id"])
    second = deploy(client, alice, project["id"])
    assert second["deployment"]["output_manifest_hash"] == root2
    rolled = client.post(f"/v1/infrastructure/deployments/{first['deployment_id']}/rollback", headers=alice.headers)
    assert rolled.status_code == 200, rolled.text
    body = rolled.json()["deployment"]
    assert body["status"] == "ready" and body["rollback_of"] == first["deployment_id"] and body["trigger"] == "rollback"
    assert deploy_target.serves(body["url"]) == b"v1"


def test_cancel_is_forward_only(client, alice):
    project, _, _, _ = pushed(client, alice, {"index.html": b"x"})
    started = deploy(client, alice, project["id"], build="client")
    canceled = client.post(f"/v1/infrastructure/deployments/{started['deployment_id']}/cancel", headers=alice.headers)
    assert canceled.json()["deployment"]["status"] == "canceled"
    assert_problem(client.post(f"/v1/infrastructure/deployments/{started['deployment_id']}/cancel", headers=alice.headers),
                   409, "invalid_transition")
    assert event_types(client, alice, project["id"])[-1] == "deployment.canceled"


def test_auto_deploy_when_main_moves(client, alice):
    project, workspace, _, _ = pushed(client, alice, {"index.html": b"v1"})
    client.put(f"/v1/infrastructure/workspaces/{workspace['id']}/deployment-settings", headers=alice.headers,
               json={"auto_deploy": True})
    root2 = upload_tree(client, alice, {"index.html": b"v2"})
    snapshot(client, alice, project["id"], root2, workspace_id=workspace["id"])
    history = client.get(f"/v1/infrastructure/workspaces/{workspace['id']}/deployments", headers=alice.headers).json()
    assert [(d["trigger"], d["status"]) for d in history["deployments"]] == [("auto", "ready")]


def test_credentials_local_needs_none_and_cloudflare_needs_one(client, platform):
    carol = make_caller(platform, "carol@example.com")  # no credential saved
    assert client.get("/v1/infrastructure/credentials", headers=carol.headers).json() == {"credentials": []}
    assert client.post("/v1/infrastructure/credentials", headers=carol.headers,
                       json={"provider": "local", "api_token": "x"}).status_code == 422
    project, _, _, _ = pushed(client, carol, {"index.html": b"x"})
    response = client.post(f"/v1/infrastructure/projects/{project['id']}/deploy", headers=carol.headers,
                           json={"provider": "cloudflare"})
    assert_problem(response, 422, "credential_missing")
    assert_problem(client.delete("/v1/infrastructure/credentials/cloudflare", headers=carol.headers), 404, "not_found")


def test_other_users_get_404_on_every_route(client, alice, bob):
    project, workspace, _, _ = pushed(client, alice, WORKER)
    result = deploy(client, alice, project["id"])
    deployment_id = result["deployment_id"]
    resource_id = result["resources"][0]["id"]
    p, w, d = project["id"], workspace["id"], deployment_id
    requests = [
        ("GET", f"/v1/infrastructure/workspaces/{w}/deployment-settings", None),
        ("PUT", f"/v1/infrastructure/workspaces/{w}/deployment-settings", {"auto_deploy": True}),
        ("GET", f"/v1/infrastructure/workspaces/{w}/deployments", None),
        ("GET", f"/v1/infrastructure/deployments/{d}", None),
        ("GET", f"/v1/infrastructure/deployments/{d}/logs", None),
        ("POST", f"/v1/infrastructure/deployments/{d}/rollback", None),
        ("POST", f"/v1/infrastructure/deployments/{d}/cancel", None),
        ("GET", f"/v1/infrastructure/projects/{p}/resources", None),
        ("GET", f"/v1/infrastructure/projects/{p}/resources/{resource_id}", None),
        ("DELETE", f"/v1/infrastructure/projects/{p}/resources/{resource_id}", None),
        ("GET", f"/v1/infrastructure/projects/{p}/detect", None),
        ("POST", f"/v1/infrastructure/projects/{p}/deploy", {}),
        ("POST", f"/v1/workspaces/{w}/deploy", None),
    ]
    for method, url, body in requests:
        response = client.request(method, url, headers=bob.headers, json=body)
        assert_problem(response, 404, "not_found")
    assert client.get(f"/v1/infrastructure/projects/{p}/resources", headers=alice.headers).json()["resources"]
    assert client.get(f"/v1/infrastructure/workspaces/{w}/deployment-settings", headers=alice.headers).json()["settings"]["auto_deploy"] is False


def test_routes_need_the_deploy_ability(client, platform):
    reader = make_caller(platform, "reader@example.com", ("projects:read",))
    assert_problem(client.get("/v1/infrastructure/credentials", headers=reader.headers), 403, "forbidden")
    assert client.get("/v1/infrastructure/credentials").status_code == 401


def test_gc_keeps_what_a_deployment_serves(client, alice, clock, deploy_target):
    from fastest.config import Settings

    project, _, _, _ = pushed(client, alice, {"package.json": b'{"scripts":{"build":"x"},"devDependencies":{"vite":"5"}}'})
    started = deploy(client, alice, project["id"], build="client")
    built = upload_tree(client, alice, {"index.html": b"<h1>only in the build</h1>", "app.js": b"1"})
    url = f"/v1/infrastructure/deployments/{started['deployment_id']}/status"
    done = client.post(url, headers={"X-Deploy-Token": started["callback_token"]},
                       json={"status": "deploying", "output_manifest_hash": built})
    assert done.json()["status"] == "ready"
    clock.advance(Settings().gc_grace_seconds + 60)
    swept = client.post("/v1/blobs/gc", headers=alice.headers, json={"dryRun": False}).json()
    assert swept["orphanedBlobs"] == 0 and swept["orphanedManifests"] == 0
    live = client.get(f"/v1/infrastructure/deployments/{started['deployment_id']}", headers=alice.headers).json()
    assert deploy_target.serves(live["deployment"]["url"], "/app.js") == b"1"


def test_a_move_from_a_stale_read_changes_nothing(client, alice, platform):
    from fastest.errors import Conflict
    from fastest.services import deployments

    project, _, _, _ = pushed(client, alice, {"index.html": b"x"})
    started = deploy(client, alice, project["id"], build="client")
    stale = run(deployments.by_id(platform, started["deployment_id"]))
    run(deployments.move(platform, stale, "building", step="build", message="first"))
    events_before = count_rows(platform, "SELECT COUNT(*) AS n FROM project_events WHERE project_id = ?", project["id"])
    logs_before = count_rows(platform, "SELECT COUNT(*) AS n FROM deployment_logs WHERE deployment_id = ?", stale["id"])
    with pytest.raises(Conflict):
        run(deployments.move(platform, stale, "canceled", step="queue", message="racing"))
    assert run(deployments.by_id(platform, stale["id"]))["status"] == "building"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM project_events WHERE project_id = ?", project["id"]) == events_before
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM deployment_logs WHERE deployment_id = ?", stale["id"]) == logs_before


def test_a_worker_with_code_deploys_its_assets_and_says_so(client, alice):
    files = {**WORKER, "wrangler.toml": WORKER["wrangler.toml"].replace(b'name = "w"', b'name = "w"\nmain = "src/index.ts"'),
             "src/index.ts": b"export default {}"}
    project, _, _, _ = pushed(client, alice, files)
    result = deploy(client, alice, project["id"])
    assert result["status"] == "ready"
    logs = client.get(f"/v1/infrastructure/deployments/{result['deployment_id']}/logs", headers=alice.headers).json()["logs"]
    assert any("src/index.ts" in line["message"] and "static assets only" in line["message"] for line in logs)


def test_the_project_address_serves_its_latest_deployment(client, sites, alice, bob):
    project, workspace, _, _ = pushed(client, alice, {"index.html": b"v1"}, name="My Blog")
    first = deploy(client, alice, project["id"])
    address = first["deployment"]["project_url"]
    assert address == f"http://my-blog-{project['id'][-8:].lower()}.localhost:8787/"
    host = address.split("//")[1].rstrip("/")
    assert sites.get("/", headers={"host": host}).content == b"v1"
    root2 = upload_tree(client, alice, {"index.html": b"v2"})
    snapshot(client, alice, project["id"], root2, workspace_id=workspace["id"])
    deploy(client, alice, project["id"])
    assert sites.get("/", headers={"host": host}).content == b"v2"
    client.post(f"/v1/infrastructure/deployments/{first['deployment_id']}/rollback", headers=alice.headers)
    assert sites.get("/", headers={"host": host}).content == b"v1"
    assert sites.get("/", headers={"host": "my-blog-00000000.localhost"}).status_code == 404
    # Bob's project of the same name has its own address.
    other = pushed(client, bob, {"index.html": b"bob"}, name="My Blog")[0]
    bobs = deploy(client, bob, other["id"])["deployment"]["project_url"]
    assert bobs != address and sites.get("/", headers={"host": bobs.split("//")[1].rstrip("/")}).content == b"bob"


def test_project_insights_know_the_last_deploy(client, alice, clock):
    project, workspace, _, _ = pushed(client, alice, {"index.html": b"v1"})
    assert client.get(f"/v1/projects/{project['id']}", headers=alice.headers).json()["snapshot_insights"]["last_deploy_at"] is None
    result = deploy(client, alice, project["id"])
    clock.advance(5)
    snapshot(client, alice, project["id"], upload_tree(client, alice, {"index.html": b"v2"}), workspace_id=workspace["id"])
    insights = client.get(f"/v1/projects/{project['id']}", headers=alice.headers).json()["snapshot_insights"]
    assert insights["last_deploy_at"] == result["deployment"]["completed_at"] and insights["snapshots_since_deploy"] == 1
