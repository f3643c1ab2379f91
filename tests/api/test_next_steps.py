"""Next steps: rules over real signals without a model; the model's structured output (validated,
one retry, then the rules) with the loopback model server; status changes, feedback, no duplicates."""

from __future__ import annotations

import json

import pytest

from fastest.config import Settings
from tests.api.json_model_server import JsonModelServer, use_model
from tests.api.test_atlas import index, shop
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.conftest import assert_problem


@pytest.fixture
def settings():
    return Settings(ai_rate_limit_per_minute=100)


@pytest.fixture
def project(client, alice):
    return shop(client, alice, "main", indexed=True)[0]


def generate(client, caller, project_id):
    response = client.post(f"/v1/projects/{project_id}/next-steps/generate", headers=caller.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_without_a_model_rules_find_real_signals(client, alice, project):
    result = generate(client, alice, project)
    assert result["source"]["kind"] == "rules" and result["generated_count"] == len(result["next_steps"])
    steps = {s["category"]: s for s in result["next_steps"]}
    assert {"quality", "testing", "maintenance"} <= steps.keys()
    assert "api/shop/broken.py" in steps["quality"]["related_paths"]
    assert "api/shop/handlers/orders.py" not in steps["testing"]["related_paths"]  # a test imports it
    assert "api/shop/models.py" in steps["testing"]["related_paths"]
    assert steps["maintenance"]["title"] == "Resolve 1 TODO/FIXME note(s)"
    assert all(s["source"]["kind"] == "rules" and s["status"] == "pending" for s in result["next_steps"])
    # Generating again creates nothing that is already pending.
    assert generate(client, alice, project)["generated_count"] == 0
    listed = client.get(f"/v1/projects/{project}/next-steps", headers=alice.headers).json()["next_steps"]
    assert len(listed) == result["generated_count"] and listed[0]["priority"] == "high"


def test_a_project_without_readme_and_a_stale_workspace(client, alice, clock):
    project = new_project(client, alice, "bare")
    main = new_workspace(client, alice, project["id"], "main")
    feature = new_workspace(client, alice, project["id"], "feature")
    base = snapshot(client, alice, project["id"], upload_tree(client, alice, {"app.py": b"x = 1\n"}), workspace_id=main["id"])
    snapshot(client, alice, project["id"], upload_tree(client, alice, {"app.py": b"x = 1\n", "more.py": b"y = 2\n"}),
             workspace_id=feature["id"], parent_snapshot_ids=[base["id"]])
    clock.advance(10 * 86400)
    snapshot(client, alice, project["id"], upload_tree(client, alice, {"app.py": b"x = 2\n"}), workspace_id=main["id"],
             parent_snapshot_ids=[base["id"]])
    index(client, alice, project["id"])
    clock.advance(10 * 86400)
    steps = {s["category"]: s for s in generate(client, alice, project["id"])["next_steps"]}
    assert steps["docs"]["title"] == "Add a README"
    assert steps["sync"]["title"] == "Sync workspace “feature” with main" and steps["sync"]["evidence"][0]["ref"] == feature["id"]


def test_status_feedback_and_dismissals_steer(client, alice, project):
    steps = generate(client, alice, project)["next_steps"]
    todo = next(s for s in steps if s["category"] == "maintenance")
    url = f"/v1/projects/{project}/next-steps/{todo['id']}"
    assert client.patch(url, headers=alice.headers, json={"status": "started"}).json() == {"success": True}
    assert client.patch(url, headers=alice.headers, json={"status": "completed"}).status_code == 200
    assert_problem(client.patch(url, headers=alice.headers, json={"status": "started"}), 409, "invalid_transition")
    assert_problem(client.patch(url, headers=alice.headers, json={"status": "done"}), 422, "validation_failed")
    assert client.get(f"/v1/projects/{project}/next-steps", headers=alice.headers, params={"status": "completed"}).json()["next_steps"][0]["id"] == todo["id"]
    testing = next(s for s in steps if s["category"] == "testing")
    assert client.post(f"/v1/projects/{project}/next-steps/{testing['id']}/feedback", headers=alice.headers,
                       json={"helpful": False}).json() == {"success": True}
    assert client.patch(f"/v1/projects/{project}/next-steps/{testing['id']}", headers=alice.headers,
                        json={"status": "dismissed"}).status_code == 200
    # Dismissed: not created again; the completed TODO step may come back (its condition persists).
    again = generate(client, alice, project)["next_steps"]
    assert not any(s["category"] == "testing" for s in again)
    assert [s["category"] for s in again] == ["maintenance"]
    listed = client.get(f"/v1/projects/{project}/next-steps", headers=alice.headers, params={"status": "dismissed"}).json()
    assert listed["next_steps"][0]["feedback"] == "not_helpful"


VALID = json.dumps({"next_steps": [
    {"title": "Fix the syntax error in api/shop/broken.py", "description": "It does not parse.", "category": "quality",
     "priority": "high", "related_paths": ["api/shop/broken.py"], "evidence": [{"kind": "atlas", "ref": "api/shop/broken.py"}]},
    {"title": "Add tests for the payments module", "description": "charge() has no test.", "category": "testing",
     "priority": "medium", "related_paths": ["api/shop/handlers/payments.py"], "evidence": []},
]})


def test_with_a_model_invalid_then_valid_output(client, alice, project, platform):
    with JsonModelServer("Sure! Here are some steps: fix things.", VALID) as server:
        use_model(platform, server)
        result = generate(client, alice, project)
    assert result["source"] == {"kind": "model", "provider": "openai", "model": "json-model", "note": None}
    assert [s["title"] for s in result["next_steps"]] == ["Fix the syntax error in api/shop/broken.py",
                                                          "Add tests for the payments module"]
    assert len(server.requests) == 2  # one retry
    first = server.requests[0]["body"]
    assert first["response_format"]["type"] == "json_schema" and "next_steps" in json.dumps(first["response_format"]["json_schema"]["schema"])
    prompt = first["messages"][0]["content"]
    assert "api/shop/broken.py" in prompt and "untested" in prompt  # the real signals reach the model
    assert server.requests[1]["body"]["messages"][-1]["role"] == "user"  # the retry says what was wrong


def test_with_a_model_twice_invalid_falls_back_to_rules(client, alice, project, platform):
    with JsonModelServer('{"next_steps": "nope"}', "still not json") as server:
        use_model(platform, server)
        result = generate(client, alice, project)
    assert len(server.requests) == 2
    assert result["source"]["kind"] == "rules" and "not valid twice" in result["source"]["note"]
    assert result["generated_count"] >= 3


def test_the_ai_budget_429(client, alice, project, platform):
    with JsonModelServer(VALID) as server:
        use_model(platform, server, ai_budget_calls=1)
        generate(client, alice, project)
        response = client.post(f"/v1/projects/{project}/next-steps/generate", headers=alice.headers)
    body = assert_problem(response, 429, "ai_rate_limited")
    assert body["ai_rate_limit"]["limit"] == 1 and int(response.headers["retry-after"]) > 0


def test_next_step_routes_are_404_for_another_user(client, alice, bob, project):
    step = generate(client, alice, project)["next_steps"][0]
    base = f"/v1/projects/{project}/next-steps"
    assert_problem(client.get(base, headers=bob.headers), 404, "not_found")
    assert_problem(client.post(f"{base}/generate", headers=bob.headers), 404, "not_found")
    assert_problem(client.patch(f"{base}/{step['id']}", headers=bob.headers, json={"status": "dismissed"}), 404, "not_found")
    assert_problem(client.post(f"{base}/{step['id']}/feedback", headers=bob.headers, json={"helpful": True}), 404, "not_found")
    own = new_project(client, bob, "bob's")
    assert_problem(client.patch(f"/v1/projects/{own['id']}/next-steps/{step['id']}", headers=bob.headers,
                                json={"status": "dismissed"}), 404, "not_found")


def test_next_steps_and_action_items_count_the_same_untested_modules(client, alice, project):
    """One rule for "untested": the testing step and the untested-modules items of the same tree
    name the same modules."""
    steps = {s["category"]: s for s in generate(client, alice, project)["next_steps"]}
    counted = int(steps["testing"]["title"].split()[3])  # "Add tests for N untested module(s), …"
    items = client.get("/v1/action-items", headers=alice.headers).json()["items"]
    untested = [i for i in items if i["type"] == "untested-modules" and i["project_id"] == project]
    assert untested and counted == sum(i["magnitude"] for i in untested)
