"""Deployments meet the other features: a project whose last deployment failed is an action item
(worse with each failure in a row, gone once a deployment goes live), and the plan's `deployments`
limit counts deployed projects (re-deploys are free; a new project beyond it is a 402)."""

from __future__ import annotations

import json

import pytest

from fastest.config import Settings
from tests.api.deploy_target import alice, bob  # noqa: F401 (the callers, able to deploy)
from tests.api.test_deployments import deploy, pushed
from tests.api.trees import snapshot, upload_tree
from tests.conftest import assert_problem

NEEDS_BUILD = {
    "package.json": json.dumps({"scripts": {"build": "vite build"}, "devDependencies": {"vite": "5"}}).encode(),
    "package-lock.json": b"{}",
    "index.html": b"<div id=app>",
    "src/main.test.js": b"test()",
}


@pytest.fixture
def settings() -> Settings:
    return Settings(billing_plans=json.dumps({"free": {"deployments": 1}}), rate_limit_per_minute=1000)


def deploy_items(client, caller, **query):
    listed = client.get("/v1/action-items", headers=caller.headers, params=query).json()["items"]
    return [item for item in listed if item["type"] == "deploy-failed"]


def test_a_failed_deployment_is_an_item_until_one_goes_live(client, alice):
    project, workspace, _, _ = pushed(client, alice, NEEDS_BUILD)
    failed = deploy(client, alice, project["id"])
    assert failed["status"] == "failed"
    [item] = deploy_items(client, alice)
    assert item["severity"] == "high" and item["project_id"] == project["id"] and item["magnitude"] == 1
    assert item["action_data"]["deployment_id"] == failed["deployment_id"] and "needs a build" in item["description"]

    dismissed = client.post(f"/v1/action-items/{item['id']}/dismiss", headers=alice.headers)
    assert dismissed.status_code == 200, dismissed.text
    assert deploy_items(client, alice) == []
    # Failing again is worse: the item is back, with the same id.
    assert deploy(client, alice, project["id"])["status"] == "failed"
    [again] = deploy_items(client, alice)
    assert again["id"] == item["id"] and again["magnitude"] == 2

    # A deployment that goes live resolves it.
    root = upload_tree(client, alice, {"index.html": b"<h1>static now</h1>"})
    snapshot(client, alice, project["id"], root, workspace_id=workspace["id"])
    assert deploy(client, alice, project["id"])["status"] == "ready"
    assert deploy_items(client, alice, include_dismissed="true") == []


def test_a_failed_deployment_is_a_next_step(client, alice):
    project, _, _, _ = pushed(client, alice, NEEDS_BUILD)
    failed = deploy(client, alice, project["id"])
    generated = client.post(f"/v1/projects/{project['id']}/next-steps/generate", headers=alice.headers)
    assert generated.status_code == 201, generated.text
    [step] = [s for s in generated.json()["next_steps"] if s["category"] == "deploy"]
    assert step["priority"] == "high" and "needs a build" in step["description"]
    assert step["evidence"] == [{"kind": "deployment", "ref": failed["deployment_id"]}]


def test_the_deployments_limit_counts_projects_and_redeploys_are_free(client, alice, bob):
    first, _, _, _ = pushed(client, alice, {"index.html": b"one"}, name="One")
    assert deploy(client, alice, first["id"])["status"] == "ready"
    assert deploy(client, alice, first["id"])["status"] == "ready"  # a re-deploy costs nothing

    second, second_workspace, _, _ = pushed(client, alice, {"index.html": b"two"}, name="Two")
    refused = client.post(f"/v1/infrastructure/projects/{second['id']}/deploy", headers=alice.headers, json={})
    body = assert_problem(refused, 402, "plan_limit_reached")
    assert body["plan_limit"] == {"plan": "free", "limit_name": "deployments", "limit": 1, "used": 1, "adding": 1}
    history = client.get(f"/v1/infrastructure/workspaces/{second_workspace['id']}/deployments", headers=alice.headers)
    assert history.status_code == 200 and history.json()["deployments"] == []  # nothing was recorded

    # Another user's allowance is their own.
    theirs, _, _, _ = pushed(client, bob, {"index.html": b"bob"}, name="Bob")
    assert deploy(client, bob, theirs["id"])["status"] == "ready"
