"""Bad input on every body-taking route: the documented error, and nothing changed."""

from __future__ import annotations

import pytest

from tests.conftest import assert_problem


@pytest.fixture
def project(client, alice):
    project = client.post("/v1/projects", headers=alice.headers, json={"name": "Target"}).json()["project"]
    client.post(f"/v1/projects/{project['id']}/env-vars", headers=alice.headers, json={"key": "KEEP", "value": "1"})
    return project


def routes(pid: str) -> list[tuple[str, str, dict, dict]]:
    """(method, url, a valid body, a body with a wrong type) for every route that takes JSON."""
    return [
        ("POST", "/v1/projects", {"name": "New"}, {"name": 7}),
        ("PATCH", f"/v1/projects/{pid}", {"name": "Renamed"}, {"name": ["x"]}),
        ("PATCH", f"/v1/projects/{pid}/brief", {"intent": "i"}, {"intent": 1.5}),
        ("POST", f"/v1/projects/{pid}/env-vars", {"key": "K", "value": "v"}, {"key": "K", "value": "v", "is_secret": "yes"}),
        ("PUT", f"/v1/projects/{pid}/env-vars", {"variables": [{"key": "K", "value": "v"}]}, {"variables": {"key": "K"}}),
    ]


def snapshot_of_state(client, caller, pid):
    return (
        client.get("/v1/projects", headers=caller.headers).json(),
        client.get(f"/v1/projects/{pid}", headers=caller.headers).json(),
        client.get(f"/v1/projects/{pid}/env-vars", headers=caller.headers).json(),
    )


@pytest.mark.parametrize("index", range(5))
def test_bad_bodies_are_refused_and_change_nothing(client, alice, platform, project, index):
    method, url, valid, wrong_type = routes(project["id"])[index]
    before = snapshot_of_state(client, alice, project["id"])
    json_headers = {**alice.headers, "content-type": "application/json"}

    assert_problem(client.request(method, url, headers=json_headers, content=b'{"name": "x",'), 400, "invalid_json")
    assert_problem(client.request(method, url, headers=json_headers, content=b"\xff\xfe"), 400, "invalid_json")

    body = assert_problem(client.request(method, url, headers=alice.headers, json=wrong_type), 422, "validation_failed")
    assert body["error"]["fields"]

    body = assert_problem(client.request(method, url, headers=alice.headers, json={**valid, "surprise": True}), 422, "validation_failed")
    assert body["error"]["fields"] == {"surprise": "unknown field"}

    oversize = b'{"name": "' + b"a" * (platform.settings.max_body_bytes + 1) + b'"}'
    assert_problem(client.request(method, url, headers=json_headers, content=oversize), 413, "payload_too_large")

    assert snapshot_of_state(client, alice, project["id"]) == before
