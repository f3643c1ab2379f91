"""What a deploy and its status callback accept: a `snapshot_id` of that very project (422 for
another user's, a made-up one or a path), an http(s) `url` only, `ready` only with an output; and a
deployment left without progress (its client died) is failed by a job that says why."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from fastest.services.operations import jobs
from tests.api.deploy_target import alice, bob  # noqa: F401 (the callers, able to deploy)
from tests.api.test_deployments import deploy, pushed
from tests.conftest import assert_problem, run

PACKAGE = {"package.json": b'{"scripts":{"build":"x"},"devDependencies":{"vite":"5"}}'}


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000)


def deployments_of(client, caller, workspace_id):
    return client.get(f"/v1/infrastructure/workspaces/{workspace_id}/deployments", headers=caller.headers).json()["deployments"]


def test_a_deploy_names_only_a_snapshot_of_its_project(client, alice, bob):
    project, workspace, _, snap = pushed(client, alice, {"index.html": b"<h1>hi</h1>"})
    other, _, _, other_snap = pushed(client, alice, {"index.html": b"<h1>other</h1>"}, name="Other")
    _, _, _, bobs = pushed(client, bob, {"index.html": b"<h1>bob</h1>"})
    for bad in (bobs["id"], other_snap["id"], "snp_made_up", "garbage/../x"):
        response = client.post(f"/v1/infrastructure/projects/{project['id']}/deploy", headers=alice.headers,
                               json={"snapshot_id": bad})
        assert_problem(response, 422, "validation_failed")
    assert deployments_of(client, alice, workspace["id"]) == []
    done = deploy(client, alice, project["id"], snapshot_id=snap["id"])
    assert done["status"] == "ready" and done["deployment"]["snapshot_id"] == snap["id"]


def test_the_status_callback_takes_http_urls_and_ready_only_with_an_output(client, alice):
    project, _, _, _ = pushed(client, alice, PACKAGE)
    started = deploy(client, alice, project["id"], build="client")
    url = f"/v1/infrastructure/deployments/{started['deployment_id']}/status"
    token = client.post(url, headers={"X-Deploy-Token": started["callback_token"]}, json={"status": "building"}).json()["next_token"]
    for bad in ("javascript:alert(document.cookie)", "data:text/html,<script>x</script>", "//evil.example", "ftp://x.example/"):
        response = client.post(url, headers={"X-Deploy-Token": token}, json={"status": "failed", "url": bad})
        assert_problem(response, 422, "validation_failed")
    assert_problem(client.post(url, headers={"X-Deploy-Token": token}, json={"status": "ready", "url": "https://x.example/"}),
                   422, "validation_failed")
    view = client.get(f"/v1/infrastructure/deployments/{started['deployment_id']}", headers=alice.headers).json()["deployment"]
    assert view["status"] == "building" and view["url"] is None


def test_a_deployment_without_progress_is_failed_with_a_reason(client, alice, platform, clock):
    project, _, _, _ = pushed(client, alice, PACKAGE)
    started = deploy(client, alice, project["id"], build="client")
    clock.advance(30 * 60)
    assert run(jobs.run(platform, "fail-stalled-deployments")) == 0  # half an hour: still waiting
    clock.advance(31 * 60)
    assert run(jobs.run(platform, "fail-stalled-deployments")) == 1
    deployment = started["deployment_id"]
    view = client.get(f"/v1/infrastructure/deployments/{deployment}", headers=alice.headers).json()["deployment"]
    assert view["status"] == "failed"
    logs = client.get(f"/v1/infrastructure/deployments/{deployment}/logs", headers=alice.headers).json()["logs"]
    assert "No progress for 60 minutes" in logs[-1]["message"]


def test_the_stalled_deployments_job_run_twice_at_once_fails_each_once(client, alice, platform, clock):
    import asyncio

    project, _, _, _ = pushed(client, alice, PACKAGE)
    deployment = deploy(client, alice, project["id"], build="client")["deployment_id"]
    clock.advance(61 * 60)

    async def both():
        return await asyncio.gather(jobs.run(platform, "fail-stalled-deployments"), jobs.run(platform, "fail-stalled-deployments"))

    assert sum(run(both())) == 1
    logs = client.get(f"/v1/infrastructure/deployments/{deployment}/logs", headers=alice.headers).json()["logs"]
    assert sum("No progress" in line["message"] for line in logs) == 1
