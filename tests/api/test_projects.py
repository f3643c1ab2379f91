"""The projects slice through HTTP: happy paths, events, bad input, and secrets handling."""

from __future__ import annotations

import pytest

from fastest.domain.tokens import ABILITIES
from tests.conftest import assert_problem, count_rows, make_caller, run


@pytest.fixture
def project(client, alice):
    response = client.post("/v1/projects", headers=alice.headers, json={"name": "Website"})
    assert response.status_code == 201, response.text
    return response.json()["project"]


def event_types(client, caller, project_id):
    return [e["type"] for e in client.get(f"/v1/projects/{project_id}/events", headers=caller.headers).json()["events"]]


def test_create_returns_the_project_and_records_an_event(client, alice, project):
    assert project["id"].startswith("prj_") and project["name"] == "Website"
    assert project["user_id"] == alice.user_id
    assert project["created_at"].endswith("Z")
    assert event_types(client, alice, project["id"]) == ["project.created"]


def test_names_are_trimmed_and_unique_per_user(client, alice, bob, project, platform):
    assert_problem(client.post("/v1/projects", headers=alice.headers, json={"name": "  Website "}), 409, "project_name_taken")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM projects") == 1
    assert client.post("/v1/projects", headers=bob.headers, json={"name": "Website"}).status_code == 201


def test_list_is_most_recently_updated_first(client, alice, clock):
    ids = []
    for name in ("a", "b", "c"):
        clock.advance(1)
        ids.append(client.post("/v1/projects", headers=alice.headers, json={"name": name}).json()["project"]["id"])
    clock.advance(1)
    client.patch(f"/v1/projects/{ids[0]}", headers=alice.headers, json={"name": "a2"})
    listed = [p["id"] for p in client.get("/v1/projects", headers=alice.headers).json()["projects"]]
    assert listed == [ids[0], ids[2], ids[1]]


def test_detail_has_workspaces_snapshots_events_and_insights(client, alice, project):
    body = client.get(f"/v1/projects/{project['id']}", headers=alice.headers).json()
    assert body["project"]["id"] == project["id"]
    assert body["workspaces"] == [] and body["snapshots"] == []
    assert [e["type"] for e in body["events"]] == ["project.created"]
    assert body["snapshot_insights"]["total_snapshots"] == 0


def test_rename_records_event_and_refuses_duplicates(client, alice, project, platform):
    other = client.post("/v1/projects", headers=alice.headers, json={"name": "Other"}).json()["project"]
    renamed = client.patch(f"/v1/projects/{project['id']}", headers=alice.headers, json={"name": "Site"})
    assert renamed.status_code == 200 and renamed.json()["project"]["name"] == "Site"
    assert event_types(client, alice, project["id"])[0] == "project.renamed"
    assert_problem(client.patch(f"/v1/projects/{other['id']}", headers=alice.headers, json={"name": "Site"}), 409, "project_name_taken")
    assert client.get(f"/v1/projects/{other['id']}", headers=alice.headers).json()["project"]["name"] == "Other"


def test_patch_bad_input_changes_nothing(client, alice, project):
    for body in ({}, {"name": 5}, {"name": "x", "extra": 1}):
        assert client.patch(f"/v1/projects/{project['id']}", headers=alice.headers, json=body).status_code == 422
    assert client.get(f"/v1/projects/{project['id']}", headers=alice.headers).json()["project"]["name"] == "Website"


def test_status_and_brief(client, alice, project):
    status = client.get(f"/v1/projects/{project['id']}/status", headers=alice.headers).json()
    assert status == {"last_snapshot_id": None, "updated_at": project["updated_at"], "last_activity": project["last_activity_at"]}
    assert client.get(f"/v1/projects/{project['id']}/brief", headers=alice.headers).json() == {
        "project": {"id": project["id"], "intent": None, "brief": None}
    }
    response = client.patch(f"/v1/projects/{project['id']}/brief", headers=alice.headers, json={"intent": "Sell shoes"})
    assert response.json() == {"success": True}
    client.patch(f"/v1/projects/{project['id']}/brief", headers=alice.headers, json={"brief": "A shop."})
    assert client.get(f"/v1/projects/{project['id']}/brief", headers=alice.headers).json()["project"] == {
        "id": project["id"], "intent": "Sell shoes", "brief": "A shop."
    }
    assert event_types(client, alice, project["id"])[:2] == ["project.brief_updated", "project.brief_updated"]
    assert_problem(client.patch(f"/v1/projects/{project['id']}/brief", headers=alice.headers, json={"intent": 3}), 422, "validation_failed")


def test_events_paginate(client, alice, project):
    for i in range(5):
        client.patch(f"/v1/projects/{project['id']}/brief", headers=alice.headers, json={"intent": f"v{i}"})
    first = client.get(f"/v1/projects/{project['id']}/events?limit=4", headers=alice.headers).json()
    second = client.get(f"/v1/projects/{project['id']}/events?limit=4&cursor={first['next_cursor']}", headers=alice.headers).json()
    assert len(first["events"]) == 4 and len(second["events"]) == 2 and second["next_cursor"] is None
    events = first["events"] + second["events"]
    assert len({e["id"] for e in events}) == 6
    assert [e["data"] for e in events[:5]] == [{"fields": ["intent"]}] * 5 and events[-1]["type"] == "project.created"


class TestDelete:
    def test_delete_cascades(self, client, alice, project, platform):
        client.post(f"/v1/projects/{project['id']}/env-vars", headers=alice.headers, json={"key": "A", "value": "1"})
        assert client.delete(f"/v1/projects/{project['id']}", headers=alice.headers).status_code == 204
        assert_problem(client.get(f"/v1/projects/{project['id']}", headers=alice.headers), 404, "not_found")
        for table in ("projects", "env_vars", "project_events"):
            assert count_rows(platform, f"SELECT COUNT(*) AS n FROM {table}") == 0

    def test_delete_needs_a_fresh_session(self, client, alice, project, clock):
        clock.advance(16 * 60)
        assert_problem(client.delete(f"/v1/projects/{project['id']}", headers=alice.headers), 403, "reauthentication_required")
        assert client.get(f"/v1/projects/{project['id']}", headers=alice.headers).status_code == 200


class TestEnvVars:
    def test_secrets_are_masked_in_lists_and_sealed_at_rest(self, client, alice, project, platform):
        base = f"/v1/projects/{project['id']}/env-vars"
        assert client.post(base, headers=alice.headers, json={"key": "API_TOKEN", "value": "sk-live-abcdef123456", "is_secret": True}).json() == {"success": True}
        assert client.post(base, headers=alice.headers, json={"key": "MODE", "value": "prod"}).status_code == 200
        listed = {v["key"]: v for v in client.get(base, headers=alice.headers).json()["variables"]}
        assert listed["MODE"]["value"] == "prod" and listed["MODE"]["is_secret"] is False
        assert listed["API_TOKEN"]["is_secret"] is True and "abcdef" not in listed["API_TOKEN"]["value"]
        row = run(platform.db.prepare("SELECT * FROM env_vars WHERE key = 'API_TOKEN'").first())
        assert row["value"] is None and "sk-live" not in row["value_ciphertext"]
        assert event_types(client, alice, project["id"])[0] == "env_vars.set"
        assert "sk-live" not in str(client.get(f"/v1/projects/{project['id']}/events", headers=alice.headers).json())

    def test_upsert_replaces_value_and_secrecy(self, client, alice, project):
        base = f"/v1/projects/{project['id']}/env-vars"
        client.post(base, headers=alice.headers, json={"key": "K", "value": "one", "is_secret": True})
        client.post(base, headers=alice.headers, json={"key": "K", "value": "two"})
        [variable] = client.get(base, headers=alice.headers).json()["variables"]
        assert variable["value"] == "two" and variable["is_secret"] is False

    def test_values_need_secrets_read_and_a_fresh_session(self, client, alice, project, platform, clock):
        base = f"/v1/projects/{project['id']}/env-vars"
        client.post(base, headers=alice.headers, json={"key": "S", "value": "hunter2", "is_secret": True})
        client.post(base, headers=alice.headers, json={"key": "P", "value": "plain"})
        body = assert_problem(client.get(f"{base}/values", headers=alice.headers), 403, "forbidden")
        assert body["required_ability"] == "secrets:read"
        reader = make_caller(platform, alice.email, abilities=ABILITIES)
        revealed = client.get(f"{base}/values", headers=reader.headers).json()["variables"]
        assert revealed == [{"key": "P", "value": "plain", "is_secret": False}, {"key": "S", "value": "hunter2", "is_secret": True}]
        assert event_types(client, alice, project["id"])[0] == "env_vars.revealed"
        clock.advance(16 * 60)
        assert_problem(client.get(f"{base}/values", headers=reader.headers), 403, "reauthentication_required")

    def test_bulk_set_is_atomic(self, client, alice, project):
        base = f"/v1/projects/{project['id']}/env-vars"
        ok = client.put(base, headers=alice.headers, json={"variables": [{"key": "A", "value": "1"}, {"key": "B", "value": "2", "is_secret": True}]})
        assert ok.json() == {"success": True, "count": 2}
        bad = client.put(base, headers=alice.headers, json={"variables": [{"key": "C", "value": "3"}, {"key": "1BAD", "value": "x"}]})
        body = assert_problem(bad, 422, "validation_failed")
        assert "variables.1.key" in body["error"]["fields"]
        dup = client.put(base, headers=alice.headers, json={"variables": [{"key": "D", "value": "3"}, {"key": "D", "value": "4"}]})
        assert_problem(dup, 422, "validation_failed")
        assert [v["key"] for v in client.get(base, headers=alice.headers).json()["variables"]] == ["A", "B"]

    @pytest.mark.parametrize(
        "body",
        [{"key": "has space", "value": "x"}, {"key": "", "value": "x"}, {"key": "A"}, {"key": "A", "value": 5},
         {"key": "A", "value": "x", "secret": True}, {"variables": []}],
    )
    def test_bad_single_set_is_422_and_changes_nothing(self, client, alice, project, body):
        base = f"/v1/projects/{project['id']}/env-vars"
        assert_problem(client.post(base, headers=alice.headers, json=body), 422, "validation_failed")
        assert client.get(base, headers=alice.headers).json()["variables"] == []

    def test_bulk_limits(self, client, alice, project):
        base = f"/v1/projects/{project['id']}/env-vars"
        too_many = {"variables": [{"key": f"K{i}", "value": "v"} for i in range(101)]}
        assert_problem(client.put(base, headers=alice.headers, json=too_many), 422, "validation_failed")
        assert_problem(client.put(base, headers=alice.headers, json={"variables": []}), 422, "validation_failed")

    def test_delete(self, client, alice, project):
        base = f"/v1/projects/{project['id']}/env-vars"
        client.post(base, headers=alice.headers, json={"key": "GONE", "value": "x"})
        assert client.delete(f"{base}/GONE", headers=alice.headers).json() == {"success": True}
        assert_problem(client.delete(f"{base}/GONE", headers=alice.headers), 404, "not_found")
        assert event_types(client, alice, project["id"])[0] == "env_vars.deleted"


def test_another_users_project_is_404_on_every_route(client, alice, platform, project):
    # Bob holds every ability and a fresh session: only ownership stands between him and the project.
    bob = make_caller(platform, "bob@example.com", abilities=ABILITIES)
    pid = project["id"]
    client.post(f"/v1/projects/{pid}/env-vars", headers=alice.headers, json={"key": "S", "value": "x", "is_secret": True})
    before = client.get(f"/v1/projects/{pid}", headers=alice.headers).json()
    routes = [
        ("GET", f"/v1/projects/{pid}", None),
        ("PATCH", f"/v1/projects/{pid}", {"name": "mine"}),
        ("DELETE", f"/v1/projects/{pid}", None),
        ("GET", f"/v1/projects/{pid}/status", None),
        ("GET", f"/v1/projects/{pid}/events", None),
        ("GET", f"/v1/projects/{pid}/brief", None),
        ("PATCH", f"/v1/projects/{pid}/brief", {"intent": "mine"}),
        ("GET", f"/v1/projects/{pid}/env-vars", None),
        ("POST", f"/v1/projects/{pid}/env-vars", {"key": "X", "value": "y"}),
        ("PUT", f"/v1/projects/{pid}/env-vars", {"variables": [{"key": "X", "value": "y"}]}),
        ("DELETE", f"/v1/projects/{pid}/env-vars/S", None),
        ("GET", f"/v1/projects/{pid}/env-vars/values", None),
    ]
    for method, url, body in routes:
        response = client.request(method, url, headers=bob.headers, json=body)
        assert_problem(response, 404, "not_found")
    missing = client.get("/v1/projects/prj_00000000000000000000000000", headers=bob.headers)
    assert missing.json()["error"] == client.get(f"/v1/projects/{pid}", headers=bob.headers).json()["error"]
    assert client.get(f"/v1/projects/{pid}", headers=alice.headers).json() == before
    assert [p["id"] for p in client.get("/v1/projects", headers=bob.headers).json()["projects"]] == []
