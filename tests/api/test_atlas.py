"""The Atlas over HTTP: index a pushed snapshot, read the graph, search it, re-index incrementally."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from tests.api.atlas_project import FILES
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.conftest import assert_problem, count_rows


def push(client, caller, project_id, workspace_id, files):
    root = upload_tree(client, caller, files)
    return snapshot(client, caller, project_id, root, workspace_id=workspace_id)


def index(client, caller, project_id, **params):
    response = client.post(f"/v1/projects/{project_id}/atlas/index", headers=caller.headers, params=params)
    assert response.status_code in (200, 202), response.text
    return response.json()


def pushed(client, caller, files, name, workspace_name="laptop", *, indexed=False) -> tuple[str, str]:
    """A new project with `files` pushed to a new workspace, indexed if asked: (project id, workspace id)."""
    project = new_project(client, caller, name)
    workspace = new_workspace(client, caller, project["id"], workspace_name)
    push(client, caller, project["id"], workspace["id"], files)
    if indexed:
        index(client, caller, project["id"])
    return project["id"], workspace["id"]


def shop(client, caller, workspace_name="laptop", *, indexed=False) -> tuple[str, str]:
    """The "shop" project (tests/api/atlas_project.py) pushed to a new workspace, indexed if asked:
    (project id, workspace id)."""
    return pushed(client, caller, FILES, "shop", workspace_name, indexed=indexed)


@pytest.fixture
def project(client, alice):
    project_id, workspace_id = shop(client, alice)
    return {"id": project_id, "workspace_id": workspace_id}


def all_concepts(client, caller, project_id, **params):
    concepts, edges, cursor = [], [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/projects/{project_id}/atlas", headers=caller.headers, params=query).json()
        concepts += page["concepts"]
        edges += page["edges"]
        cursor = page["next_cursor"]
        if cursor is None:
            return concepts, edges, page["index"]


def test_index_builds_layers_edges_and_flags_what_does_not_parse(client, alice, project):
    result = index(client, alice, project["id"])
    assert result["status"] == "ready" and result["concepts_created"] > 20 and result["edges_created"] > 20
    assert result["reused"] == {"directories": 0, "files": 0} and result["parse_errors"] == 1
    concepts, edges, status = all_concepts(client, alice, project["id"], limit=7)
    assert status["status"] == "ready" and status["snapshot_id"] == result["snapshot_id"]
    by_name = {(c["layer"], c["name"]): c for c in concepts}
    assert {("system", "shop"), ("system", "api"), ("system", "web")} <= by_name.keys()
    assert ("code", "OrderHandler.create") in by_name and by_name[("code", "OrderHandler.create")]["kind"] == "method"
    assert by_name[("code", "renderCart")]["description"] == "Shows the shopping cart with a checkout button."
    broken = by_name[("module", "api/shop/broken.py")]
    assert broken["parse_error"] and not any(c["path"] == "api/shop/broken.py" and c["layer"] == "code" for c in concepts)
    ids = {c["id"]: c for c in concepts}
    imports = {(ids[e["source_id"]]["path"], ids[e["target_id"]]["path"]) for e in edges if e["kind"] == "imports"}
    assert ("api/shop/app.py", "api/shop/handlers/orders.py") in imports  # from .handlers import orders
    assert ("api/shop/handlers/orders.py", "api/shop/db.py") in imports  # from ..db import connect
    assert ("api/shop/handlers/payments.py", "api/shop/models.py") in imports  # absolute, under api/
    assert ("web/src/index.ts", "web/src/components/index.ts") in imports  # re-export, index file
    assert ("web/src/components/index.ts", "web/src/components/button.ts") in imports
    kinds = {e["kind"] for e in edges}
    assert {"contains", "imports", "defines"} <= kinds
    # PageRank: what many import ranks above what nothing imports.
    assert by_name[("module", "api/shop/models.py")]["rank"] > by_name[("module", "api/shop/app.py")]["rank"]
    modules, _, _ = all_concepts(client, alice, project["id"], layer="module", limit=100)
    assert {c["layer"] for c in modules} == {"module"} and len(modules) == len(FILES)


def test_reindex_after_one_file_change_reuses_every_untouched_directory(client, alice, project):
    index(client, alice, project["id"])
    again = index(client, alice, project["id"])
    assert again["reused"]["directories"] == 1 and again["read"] == {"files": 0, "manifests": 0}
    changed = dict(FILES)
    changed["api/shop/handlers/payments.py"] = FILES["api/shop/handlers/payments.py"] + b"\n\ndef void(order):\n    return None\n"
    push(client, alice, project["id"], project["workspace_id"], changed)
    result = index(client, alice, project["id"])
    # Read: the changed file, and the manifests of "", api, api/shop, api/shop/handlers.
    assert result["read"] == {"files": 1, "manifests": 4}
    # Reused unread: web, api/tests (siblings on the path); their files counted, not read.
    assert result["reused"]["directories"] == 2
    assert result["reused"]["files"] == len(FILES) - 1
    concepts, _, _ = all_concepts(client, alice, project["id"], layer="code")
    assert any(c["name"] == "void" and c["path"] == "api/shop/handlers/payments.py" for c in concepts)
    # Removing a directory removes its concepts.
    smaller = {p: c for p, c in changed.items() if not p.startswith("web/")}
    push(client, alice, project["id"], project["workspace_id"], smaller)
    index(client, alice, project["id"])
    concepts, _, _ = all_concepts(client, alice, project["id"])
    assert not any(c["path"].startswith("web") for c in concepts)


@pytest.mark.parametrize("settings", [Settings(atlas_request_files=3, atlas_step_files=4)])
def test_a_large_tree_answers_202_and_finishes_in_the_background(client, alice, project, platform, settings):
    response = client.post(f"/v1/projects/{project['id']}/atlas/index", headers=alice.headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "running" and body["progress"]["done"] is False and body["progress"]["files_done"] >= 3
    # The deferred task went on after the answer, step by step.
    status = client.get(f"/v1/projects/{project['id']}/atlas", headers=alice.headers, params={"limit": 1}).json()["index"]
    assert status["status"] == "ready" and status["progress"]["done"] is True
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM atlas_files WHERE project_id = ?", project["id"]) == len(FILES)


def test_cron_job_steps_a_running_index(client, alice, project, platform):
    from fastest.services.intelligence import atlas
    from fastest.services.operations import jobs
    from tests.conftest import run

    platform.settings = Settings(atlas_request_files=2, atlas_step_files=100)
    status, body = run(atlas.start(platform, alice.user_id, project["id"], snapshot_id=None, embed=False))
    assert status == 202
    assert run(jobs.run(platform, "atlas-index")) == 1
    assert client.get(f"/v1/projects/{project['id']}/atlas", headers=alice.headers).json()["index"]["status"] == "ready"


def test_the_atlas_index_job_run_twice_at_once_ends_as_one_run(client, alice, project, platform):
    """The `atlas-index` job twice concurrently on a running index: it finishes once, with the same
    graph a request that indexes everything at once makes."""
    import asyncio

    from fastest.services.intelligence import atlas
    from fastest.services.operations import jobs
    from tests.conftest import run

    platform.settings = Settings(atlas_request_files=2, atlas_step_files=100)
    assert run(atlas.start(platform, alice.user_id, project["id"], snapshot_id=None, embed=False))[0] == 202

    async def twice():
        return await asyncio.gather(jobs.run(platform, "atlas-index"), jobs.run(platform, "atlas-index"))

    run(twice())
    stepped = client.get(f"/v1/projects/{project['id']}/atlas?limit=100", headers=alice.headers).json()
    assert stepped["index"]["status"] == "ready"
    platform.settings = Settings()
    index(client, alice, project["id"])  # again, whole: everything reused, nothing changes
    again = client.get(f"/v1/projects/{project['id']}/atlas?limit=100", headers=alice.headers).json()
    assert sorted(c["id"] for c in again["concepts"]) == sorted(c["id"] for c in stepped["concepts"])


def test_search_finds_a_symbol_by_name(client, alice, project):
    index(client, alice, project["id"])
    response = client.post(f"/v1/projects/{project['id']}/atlas/search", headers=alice.headers,
                           json={"query": "OrderHandler", "limit": 5})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["name"] == "OrderHandler" and results[0]["matched_by"] == ["text"]
    assert results[0]["path"] == "api/shop/handlers/orders.py" and results[0]["layer"] == "code"
    camel = client.post(f"/v1/projects/{project['id']}/atlas/search", headers=alice.headers,
                        json={"query": "render cart"}).json()["results"]
    assert camel[0]["name"] == "renderCart"


def test_search_by_described_behaviour_with_the_local_embedding_model(client, alice, project):
    result = index(client, alice, project["id"], embed="true")
    assert result["embeddings_created"] > 0 and result["chunks_created"] == result["embeddings_created"]
    response = client.post(f"/v1/projects/{project['id']}/atlas/search", headers=alice.headers,
                           json={"query": "take money from a credit card", "limit": 5})
    results = response.json()["results"]
    assert response.json()["embedding_model"] == "local:wordllama-l2-supercat-256"
    top = results[0]
    assert top["name"] == "charge" and "embedding" in top["matched_by"]


def test_index_without_a_snapshot_is_409(client, alice):
    project = new_project(client, alice, "empty")
    assert_problem(client.post(f"/v1/projects/{project['id']}/atlas/index", headers=alice.headers), 409, "no_snapshot")


def test_every_atlas_route_is_404_for_another_user(client, alice, bob, project):
    index(client, alice, project["id"])
    base = f"/v1/projects/{project['id']}/atlas"
    assert_problem(client.post(f"{base}/index", headers=bob.headers), 404, "not_found")
    assert_problem(client.get(base, headers=bob.headers), 404, "not_found")
    assert_problem(client.post(f"{base}/search", headers=bob.headers, json={"query": "order"}), 404, "not_found")
    assert_problem(client.get(f"{base}/diagrams", headers=bob.headers), 404, "not_found")
    assert_problem(client.post(f"{base}/diagrams", headers=bob.headers, json={"type": "dependency"}), 404, "not_found")
    # Nor can a snapshot of another user's project be indexed into one's own.
    own = new_project(client, bob, "bob's")
    snapshot_id = index(client, alice, project["id"])["snapshot_id"]
    assert_problem(client.post(f"/v1/projects/{own['id']}/atlas/index", headers=bob.headers,
                               params={"snapshot_id": snapshot_id}), 404, "not_found")


def test_a_big_index_compacts_the_text_index_and_search_still_works(client, alice, project, monkeypatch):
    from fastest.services.intelligence import atlas_indexer

    monkeypatch.setattr(atlas_indexer, "COMPACT_AFTER_FILES", 1)
    assert index(client, alice, project["id"])["status"] == "ready"
    found = client.post(f"/v1/projects/{project['id']}/atlas/search", headers=alice.headers, json={"query": "charge"}).json()
    assert found["results"][0]["name"] == "charge"
