"""Sync through HTTP: prepare a preview, execute it with decisions, undo it — and every refusal."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from fastest.config import Settings
from fastest.domain.manifest import parse_manifest
from tests.api.json_model_server import JsonModelServer, use_model
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.conftest import assert_problem, count_rows
from tests.edge_runtime import concurrent_client

BASE = {
    "README.md": b"# app\n",
    "src/app.py": b"one\ntwo\nthree\nfour\nfive\n",
    "src/util.py": b"def util():\n    return 1\n",
    "src/gone.py": b"old = True\n",
    "conf/settings.json": b'{"debug": false}\n',
    "docs/guide.md": b"Guide\n",
}


class World:
    """A project whose main and feature workspaces both started from BASE."""

    def __init__(self, client, caller, ours: dict[str, bytes], theirs: dict[str, bytes], base=BASE) -> None:
        self.client, self.caller = client, caller
        self.project = new_project(client, caller)
        self.main = new_workspace(client, caller, self.project["id"], "main")
        self.feature = new_workspace(client, caller, self.project["id"], "feature")
        pid = self.project["id"]
        self.base = snapshot(client, caller, pid, upload_tree(client, caller, base), workspace_id=self.main["id"])
        self.theirs = snapshot(client, caller, pid, upload_tree(client, caller, theirs), workspace_id=self.main["id"],
                               parent_snapshot_ids=[self.base["id"]])
        self.ours = snapshot(client, caller, pid, upload_tree(client, caller, ours), workspace_id=self.feature["id"],
                             parent_snapshot_ids=[self.base["id"]])

    def url(self, action: str, workspace_id: str | None = None) -> str:
        return f"/v1/workspaces/{workspace_id or self.feature['id']}/sync/{action}"

    def prepare(self, caller=None) -> dict[str, Any]:
        response = self.client.post(self.url("prepare"), headers=(caller or self.caller).headers)
        assert response.status_code == 200, response.text
        return response.json()["preview"]

    def execute(self, preview_id: str, decisions: dict[str, str] | None = None, **fields) -> httpx.Response:
        return self.client.post(self.url("execute"), headers=self.caller.headers,
                                json={"preview_id": preview_id, "decisions": decisions or {}, **fields})

    def workspace(self) -> dict[str, Any]:
        return self.client.get(f"/v1/workspaces/{self.feature['id']}", headers=self.caller.headers).json()["workspace"]

    def files(self, root: str | None = None) -> dict[str, bytes]:
        return read_tree(self.client, self.caller, root or self.workspace()["current_manifest_hash"])


def read_tree(client, caller, root: str, prefix: str = "") -> dict[str, bytes]:
    """Every file of a stored tree, read back through the download routes."""
    response = client.get(f"/v1/blobs/manifests/{root}", headers=caller.headers)
    assert response.status_code == 200, response.text
    files: dict[str, bytes] = {}
    for entry in parse_manifest(response.content).entries:
        path = prefix + entry.name
        if entry.type == "tree":
            files.update(read_tree(client, caller, entry.hash, path + "/"))
        else:
            files[path] = client.get(f"/v1/blobs/download/{entry.hash}", headers=caller.headers).content
    return files


def edit(files: dict[str, bytes], changes: dict[str, bytes | None]) -> dict[str, bytes]:
    """A copy of `files` with `changes` applied (None deletes a path)."""
    result = dict(files)
    for path, content in changes.items():
        if content is None:
            result.pop(path, None)
        else:
            result[path] = content
    return result


@pytest.fixture
def clean(client, alice) -> World:
    ours = edit(BASE, {"src/app.py": b"ONE\ntwo\nthree\nfour\nfive\n", "src/gone.py": None, "src/new.py": b"new\n"})
    theirs = edit(BASE, {"src/app.py": b"one\ntwo\nthree\nfour\nFIVE\n", "src/util.py": b"def util():\n    return 2\n",
                  "docs/extra.md": b"Extra\n"})
    return World(client, alice, ours, theirs)


# -- prepare and execute ------------------------------------------------------------------------


def test_a_clean_sync_merges_both_sides_and_records_a_merge_snapshot(clean, client, alice, platform):
    preview = clean.prepare()
    assert preview["id"].startswith("syp_") and preview["decisions_needed"] == []
    assert preview["base_snapshot_id"] == clean.base["id"]
    assert preview["summary"]["up_to_date"] is False and preview["summary"]["line_merged"] == 1
    assert sorted((a["path"], a["action"]) for a in preview["auto_actions"]) == [
        ("docs/extra.md", "add"), ("src/app.py", "merge"), ("src/util.py", "update"),
    ]
    assert preview["files_to_add"] == ["docs/extra.md"]
    assert sorted(preview["files_to_update"]) == ["src/app.py", "src/util.py"]
    assert preview["ai"]["engine"] == "builtin" and preview["ai"]["available"] is False
    assert "No AI model is configured" in preview["ai"]["message"]

    response = clean.execute(preview["id"])
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["files_added"], result["files_updated"], result["files_deleted"]) == (1, 2, 0)
    files = clean.files()
    assert files["src/app.py"] == b"ONE\ntwo\nthree\nfour\nFIVE\n"
    assert files["src/util.py"] == b"def util():\n    return 2\n"
    assert files["docs/extra.md"] == b"Extra\n" and files["src/new.py"] == b"new\n" and "src/gone.py" not in files
    workspace = clean.workspace()
    assert workspace["current_snapshot_id"] == result["snapshot_id"]
    assert workspace["current_manifest_hash"] == result["manifest_hash"]
    merged = client.get(f"/v1/snapshots/{result['snapshot_id']}", headers=alice.headers).json()["snapshot"]
    assert merged["parent_snapshot_ids"] == [clean.ours["id"], clean.theirs["id"]]
    assert merged["source"] == "merge" and result["pre_sync_snapshot_id"] == clean.ours["id"]
    events = client.get(f"/v1/projects/{clean.project['id']}/events", headers=alice.headers).json()["events"]
    assert events[0]["type"] == "workspace.synced"


def test_the_next_sync_starts_from_the_merge(clean, client, alice):
    first = clean.execute(clean.prepare()["id"]).json()
    again = clean.prepare()
    assert again["base_snapshot_id"] == clean.theirs["id"] and again["summary"]["up_to_date"] is True
    assert first["snapshot_id"] == clean.workspace()["current_snapshot_id"]


@pytest.fixture
def conflicted(client, alice) -> World:
    ours = edit(BASE, {"src/app.py": b"one\ntwo\nTHREE (workspace)\nfour\nfive\n", "src/util.py": b"def util():\n    return 3\n",
                "docs/guide.md": None, "notes.txt": b"mine\n", "conf/settings.json": b'{"debug": true}\n'})
    theirs = edit(BASE, {"src/app.py": b"one\ntwo\nthree (main)\nfour\nfive\n", "src/util.py": None,
                  "docs/guide.md": b"Guide v2\n", "notes.txt": b"theirs\n", "conf/settings.json": b'{"debug": false, "x": 1}\n'})
    return World(client, alice, ours, theirs)


def test_conflicts_become_decisions_with_their_options(conflicted):
    preview = conflicted.prepare()
    decisions = {d["path"]: d for d in preview["decisions_needed"]}
    assert {path: d["kind"] for path, d in decisions.items()} == {
        "conf/settings.json": "modify/modify", "docs/guide.md": "delete/modify", "notes.txt": "add/add",
        "src/app.py": "modify/modify", "src/util.py": "modify/delete",
    }
    options = {path: [o["id"] for o in d["options"]] for path, d in decisions.items()}
    assert options["src/app.py"] == ["keep_workspace", "take_main", "keep_both"]
    assert options["notes.txt"] == ["keep_workspace", "take_main", "keep_both"]
    assert options["src/util.py"] == ["keep_workspace", "take_main"]
    assert options["docs/guide.md"] == ["keep_workspace", "take_main"]
    assert all("ai_combined" not in o for o in options.values())  # builtin engine: no model
    assert preview["summary"]["decisions"] == 5 and preview["auto_actions"] == []


def test_answers_are_applied(conflicted):
    preview = conflicted.prepare()
    response = conflicted.execute(preview["id"], {
        "src/app.py": "keep_both", "notes.txt": "take_main", "src/util.py": "take_main",
        "docs/guide.md": "take_main", "conf/settings.json": "keep_workspace",
    })
    assert response.status_code == 200, response.text
    files = conflicted.files()
    assert files["src/app.py"] == b"one\ntwo\nTHREE (workspace)\nfour\nfive\n"
    assert files["src/app.main.py"] == b"one\ntwo\nthree (main)\nfour\nfive\n"
    assert files["notes.txt"] == b"theirs\n" and "src/util.py" not in files
    assert files["docs/guide.md"] == b"Guide v2\n" and files["conf/settings.json"] == b'{"debug": true}\n'
    result = response.json()
    assert (result["files_added"], result["files_updated"], result["files_deleted"]) == (2, 1, 1)


def test_missing_and_wrong_answers_are_refused_and_change_nothing(conflicted, platform):
    preview = conflicted.prepare()
    before = conflicted.workspace()
    missing = conflicted.execute(preview["id"], {"src/app.py": "take_main", "nowhere.txt": "take_main",
                                                 "src/util.py": "keep_both"})
    body = assert_problem(missing, 422, "decisions_invalid")
    fields = body["error"]["fields"]
    assert "not answered" in fields["decisions.notes.txt"] and "not answered" in fields["decisions.docs/guide.md"]
    assert "not offered" in fields["decisions.src/util.py"] and "no decision" in fields["decisions.nowhere.txt"]
    assert "decisions.src/app.py" not in fields
    unknown_option = conflicted.execute(preview["id"], {"src/app.py": "merge_somehow"})
    assert_problem(unknown_option, 422, "validation_failed")
    assert conflicted.workspace() == before
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM sync_runs") == 0


def test_prefer_one_side_everywhere(conflicted):
    preview = conflicted.prepare()
    answers = {d["path"]: "take_main" for d in preview["decisions_needed"]}
    # Four of the workspace's six files replaced or deleted: past the safety valve's 50%.
    assert_problem(conflicted.execute(preview["id"], answers), 422, "mass_change_unconfirmed")
    assert conflicted.execute(preview["id"], answers, confirm_mass_change=True).status_code == 200
    files = conflicted.files()
    assert files["src/app.py"] == b"one\ntwo\nthree (main)\nfour\nfive\n" and "src/util.py" not in files


def test_file_and_directory_clash(client, alice):
    ours = edit(BASE, {"lib": b"a file called lib\n"})
    theirs = edit(BASE, {"lib/one.py": b"1\n", "lib/two.py": b"2\n"})
    world = World(client, alice, ours, theirs)
    preview = world.prepare()
    [decision] = preview["decisions_needed"]
    assert (decision["path"], decision["kind"]) == ("lib", "file/directory")
    assert world.execute(preview["id"], {"lib": "keep_both"}).status_code == 200
    files = world.files()
    assert files["lib"] == b"a file called lib\n"
    assert files["lib.main/one.py"] == b"1\n" and files["lib.main/two.py"] == b"2\n"


def test_file_replaces_directory_when_main_is_taken(client, alice):
    ours = edit(BASE, {"lib/one.py": b"1\n", "lib/two.py": b"2\n"})
    theirs = edit(BASE, {"lib": b"main made lib a file\n"})
    world = World(client, alice, ours, theirs)
    preview = world.prepare()
    assert [d["kind"] for d in preview["decisions_needed"]] == ["directory/file"]
    assert world.execute(preview["id"], {"lib": "take_main"}).status_code == 200
    files = world.files()
    assert files["lib"] == b"main made lib a file\n" and not any(p.startswith("lib/") for p in files)


def test_binary_files_both_changed_are_decided(client, alice):
    base = {**BASE, "logo.png": b"\x89PNG\x00v1"}
    world = World(client, alice, {**base, "logo.png": b"\x89PNG\x00ours"}, {**base, "logo.png": b"\x89PNG\x00main"}, base)
    preview = world.prepare()
    [decision] = preview["decisions_needed"]
    assert decision["path"] == "logo.png" and "not text" in decision["reason"]


# -- races, staleness, expiry, ownership --------------------------------------------------------


def test_two_executes_of_one_preview_racing_one_wins(clean, platform, clock):
    preview = clean.prepare()

    async def race() -> list[httpx.Response]:
        async with concurrent_client(platform, clock) as http:
            body = {"preview_id": preview["id"], "decisions": {}}
            url = clean.url("execute")
            return list(await asyncio.gather(*(http.post(url, headers=clean.caller.headers, json=body) for _ in range(2))))

    responses = asyncio.run(race())
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 409).json()
    assert loser["error"]["code"] in ("workspace_changed", "preview_already_executed")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM sync_runs") == 1
    winner = next(r for r in responses if r.status_code == 200).json()
    assert clean.workspace()["current_snapshot_id"] == winner["snapshot_id"]


def test_a_preview_executes_once(clean):
    preview = clean.prepare()
    assert clean.execute(preview["id"]).status_code == 200
    assert_problem(clean.execute(preview["id"]), 409, "preview_already_executed")


def test_a_workspace_that_moved_after_prepare_is_refused(clean, client, alice, platform):
    preview = clean.prepare()
    moved = upload_tree(client, alice, {"other.txt": b"moved\n"})
    current = clean.workspace()
    assert client.post(f"/v1/workspaces/{clean.feature['id']}/current-manifest", headers=alice.headers,
                       json={"manifest_hash": moved}).status_code == 200
    before = clean.workspace()
    assert before["version"] == current["version"] + 1
    assert_problem(clean.execute(preview["id"]), 409, "workspace_changed")
    assert clean.workspace() == before and count_rows(platform, "SELECT COUNT(*) AS n FROM sync_runs") == 0


def test_main_that_moved_after_prepare_is_refused(clean, client, alice):
    preview = clean.prepare()
    snapshot(client, alice, clean.project["id"], upload_tree(client, alice, {"x": b"x\n"}), workspace_id=clean.main["id"],
             parent_snapshot_ids=[clean.theirs["id"]])
    assert_problem(clean.execute(preview["id"]), 409, "main_changed")


def test_expired_and_unknown_previews_are_gone(clean, clock):
    preview = clean.prepare()
    before = clean.workspace()
    clock.advance(31 * 60)
    assert_problem(clean.execute(preview["id"]), 410, "preview_expired")
    assert_problem(clean.execute("syp_" + "0" * 26), 410, "preview_expired")
    assert clean.workspace() == before


def test_another_users_or_an_unknown_workspace_is_not_found(clean, client, bob, platform):
    preview = clean.prepare()
    for action, body in (("prepare", None), ("execute", {"preview_id": preview["id"]}), ("undo", None)):
        assert_problem(client.post(clean.url(action), headers=bob.headers, json=body), 404, "not_found")
        assert_problem(client.post(clean.url(action, "wsp_nope"), headers=clean.caller.headers, json=body), 404, "not_found")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM sync_runs") == 0


def test_a_preview_belongs_to_its_workspace(clean, client, alice):
    other = new_workspace(client, alice, clean.project["id"], "other")
    preview = clean.prepare()
    response = client.post(clean.url("execute", other["id"]), headers=alice.headers, json={"preview_id": preview["id"]})
    assert_problem(response, 410, "preview_expired")


def test_main_cannot_sync_with_itself(clean, client, alice):
    assert_problem(client.post(clean.url("prepare", clean.main["id"]), headers=alice.headers), 409, "sync_with_itself")


def test_sync_needs_the_sync_ability(clean, client, platform):
    from tests.conftest import make_caller

    reader = make_caller(platform, clean.caller.email, ("projects:read",))
    assert_problem(client.post(clean.url("prepare"), headers=reader.headers), 403, "forbidden")


def test_bad_bodies(clean, client, alice):
    url = clean.url("execute")
    headers = {**alice.headers, "Content-Type": "application/json"}
    assert_problem(client.post(url, headers=headers, content=b"{"), 400, "invalid_json")
    assert_problem(client.post(url, headers=alice.headers, json={"preview_id": "nope"}), 422, "validation_failed")
    assert_problem(client.post(url, headers=alice.headers, json={}), 422, "validation_failed")


# -- mass change --------------------------------------------------------------------------------


def test_a_sync_that_would_empty_most_of_the_workspace_needs_confirmation(client, alice):
    world = World(client, alice, BASE, {"README.md": BASE["README.md"]})
    preview = world.prepare()
    assert preview["summary"]["requires_mass_change_confirmation"] is True
    before = world.workspace()
    assert_problem(world.execute(preview["id"]), 422, "mass_change_unconfirmed")
    assert world.workspace() == before
    assert world.execute(preview["id"], confirm_mass_change=True).status_code == 200
    assert world.files() == {"README.md": BASE["README.md"]}


# -- undo ---------------------------------------------------------------------------------------


def test_undo_restores_the_exact_pre_sync_manifest(clean, client, alice):
    before = clean.workspace()
    pre_manifest = clean.ours["manifest_hash"]
    result = clean.execute(clean.prepare()["id"]).json()
    undone = client.post(clean.url("undo"), headers=alice.headers)
    assert undone.status_code == 200, undone.text
    assert undone.json()["reverted_to_snapshot_id"] == clean.ours["id"] == result["pre_sync_snapshot_id"]
    after = clean.workspace()
    assert after["current_manifest_hash"] == pre_manifest and after["current_snapshot_id"] == before["current_snapshot_id"]
    assert_problem(client.post(clean.url("undo"), headers=alice.headers), 409, "nothing_to_undo")


def test_undo_after_the_workspace_moved_needs_force_and_keeps_the_moved_state(clean, client, alice, platform):
    clean.execute(clean.prepare()["id"])
    moved = upload_tree(client, alice, {"later.txt": b"later work\n"})
    client.post(f"/v1/workspaces/{clean.feature['id']}/current-manifest", headers=alice.headers, json={"manifest_hash": moved})
    before = clean.workspace()
    assert_problem(client.post(clean.url("undo"), headers=alice.headers), 409, "workspace_moved")
    assert clean.workspace() == before
    forced = client.post(clean.url("undo"), headers=alice.headers, json={"force": True}).json()
    kept = client.get(f"/v1/snapshots/{forced['before_undo_snapshot_id']}", headers=alice.headers).json()["snapshot"]
    assert kept["manifest_hash"] == moved
    assert clean.workspace()["current_manifest_hash"] == clean.ours["manifest_hash"]


def test_undo_with_nothing_synced(clean, client, alice):
    assert_problem(client.post(clean.url("undo"), headers=alice.headers), 409, "nothing_to_undo")


# -- dirty workspaces and AI combinations -------------------------------------------------------


def test_unsnapshotted_changes_are_merged_and_kept_as_the_pre_sync_snapshot(clean, client, alice):
    dirty = upload_tree(client, alice, edit(BASE, {"src/app.py": b"ONE\ntwo\nthree\nfour\nfive\n", "wip.txt": b"wip\n"}))
    client.post(f"/v1/workspaces/{clean.feature['id']}/current-manifest", headers=alice.headers, json={"manifest_hash": dirty})
    result = clean.execute(clean.prepare()["id"]).json()
    assert result["pre_sync_snapshot_id"] != clean.ours["id"]
    pre = client.get(f"/v1/snapshots/{result['pre_sync_snapshot_id']}", headers=alice.headers).json()["snapshot"]
    assert pre["manifest_hash"] == dirty and pre["parent_snapshot_ids"] == [clean.ours["id"]]
    assert clean.files()["wip.txt"] == b"wip\n"


def test_an_ai_combination_is_offered_only_when_it_passes_the_checks(conflicted, platform):
    with JsonModelServer(
        '{"debug": true, "x": 1}\n',  # conf/settings.json: valid JSON → offered
        "notes\n<<<<<<< mine\n",  # notes.txt: conflict markers → refused
        "```\none\ntwo\nTHREE (both)\nfour\nfive\n```\n",  # src/app.py: fenced → unwrapped, offered
    ) as model:
        use_model(platform, model)
        preview = conflicted.prepare()
    options = {d["path"]: [o["id"] for o in d["options"]] for d in preview["decisions_needed"]}
    assert "ai_combined" in options["conf/settings.json"] and "ai_combined" in options["src/app.py"]
    assert "ai_combined" not in options["notes.txt"]
    assert preview["ai"] == {"engine": "openai:json-model", "available": True, "offered": 2,
                             "message": preview["ai"]["message"]}
    answers = {d["path"]: "keep_workspace" for d in preview["decisions_needed"]}
    answers.update({"conf/settings.json": "ai_combined", "src/app.py": "ai_combined"})
    assert conflicted.execute(preview["id"], answers).status_code == 200
    files = conflicted.files()
    assert json.loads(files["conf/settings.json"]) == {"debug": True, "x": 1}
    assert files["src/app.py"] == b"one\ntwo\nTHREE (both)\nfour\nfive\n"


def test_an_ai_proposal_that_does_not_parse_is_refused(client, alice, platform):
    world = World(client, alice, edit(BASE, {"conf/settings.json": b'{"a": 1}\n'}), edit(BASE, {"conf/settings.json": b'{"b": 2}\n'}))
    with JsonModelServer('{"a": 1, "b": 2') as model:
        use_model(platform, model)
        preview = world.prepare()
    [decision] = preview["decisions_needed"]
    assert "ai_combined" not in [o["id"] for o in decision["options"]]
    assert preview["ai"]["offered"] == 0 and "refused" in preview["ai"]["message"]


@pytest.mark.parametrize("settings", [Settings(sync_mass_change_percent=90)])
def test_the_mass_change_share_is_configurable(client, alice, settings):
    # Four of the six files replaced or deleted (67%): over the default 50%, under the configured 90%.
    ours = BASE
    theirs = edit(BASE, {"src/app.py": b"x\n", "src/util.py": b"y\n", "src/gone.py": None, "docs/guide.md": None})
    world = World(client, alice, ours, theirs)
    preview = world.prepare()
    assert preview["summary"]["requires_mass_change_confirmation"] is False
    assert world.execute(preview["id"]).status_code == 200


@pytest.mark.parametrize("settings", [Settings(ai_budget_calls=1)])
def test_ai_combinations_stop_when_the_ai_budget_is_spent(conflicted, platform, settings):
    with JsonModelServer('{"debug": true, "x": 1}\n', "never asked\n") as model:
        use_model(platform, model, ai_budget_calls=1)
        preview = conflicted.prepare()
    assert len(model.requests) == 1  # one unit of budget, one call
    assert preview["ai"]["offered"] == 1 and "AI budget is spent" in preview["ai"]["message"]


def test_ai_combinations_use_the_users_own_provider_key(conflicted, client, alice, platform):
    """With a model configured, the conflict goes to it with the key the user stored, not the server's."""
    from tests.e2e.model_server import ModelServer

    stored = client.post("/v1/auth/api-keys", headers=alice.headers, json={"provider": "openai", "key_value": "sk-alice-own"})
    assert stored.status_code in (200, 201), stored.text
    with ModelServer() as model_server:
        use_model(platform, model_server, ai_model="test-model", ai_api_key="sk-server")
        conflicted.prepare()
    assert model_server.requests and {r["authorization"] for r in model_server.requests} == {"Bearer sk-alice-own"}
