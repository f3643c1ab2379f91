"""Drift analysis: `can_auto_sync` and `conflicts_predicted` from a dry run of the sync merge that
agrees with what `sync/prepare` then reports, and writes nothing; the model writes only the text."""

from __future__ import annotations

import json

import pytest

from fastest.config import Settings
from tests.api.json_model_server import JsonModelServer, use_model
from tests.api.test_sync import BASE, World, edit
from tests.conftest import assert_problem, count_rows


@pytest.fixture
def settings():
    return Settings(ai_rate_limit_per_minute=100)


def analyze(client, caller, workspace_id, **params):
    response = client.post(f"/v1/workspaces/{workspace_id}/drift/analyze", headers=caller.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()["analysis"]


def test_clean_changes_can_auto_sync_and_prepare_agrees(client, alice, platform):
    ours = edit(BASE, {"src/app.py": b"one\ntwo\nthree\nfour\nFIVE\n", "feature.py": b"new = 1\n"})
    theirs = edit(BASE, {"src/app.py": b"ONE\ntwo\nthree\nfour\nfive\n", "docs/guide.md": b"Guide v2\n", "src/gone.py": None})
    world = World(client, alice, ours, theirs)
    before = {t: count_rows(platform, f"SELECT COUNT(*) AS n FROM {t}") for t in ("drift_reports", "blob_refs", "sync_runs")}
    analysis = analyze(client, alice, world.feature["id"])
    assert analysis["can_auto_sync"] is True and analysis["conflicts_predicted"] == []
    assert analysis["provider"] == "rules" and "Sync now" in analysis["recommendation"]
    assert analysis["files_affected"] == 3 and analysis["risk_level"] in ("low", "medium", "high")
    after = {t: count_rows(platform, f"SELECT COUNT(*) AS n FROM {t}") for t in before}
    assert after == before  # nothing written: no report, no merged blob, no run
    preview = world.prepare()
    assert preview["decisions_needed"] == [] and analysis["can_auto_sync"] == (not preview["decisions_needed"])
    assert preview["summary"]["line_merged"] == 1 and preview["summary"]["files_to_update"] + preview["summary"]["files_to_delete"] \
        + preview["summary"]["files_to_add"] == analysis["files_affected"]


def test_conflicts_are_predicted_as_prepare_reports_them(client, alice):
    ours = edit(BASE, {"src/app.py": b"one\nTWO (ours)\nthree\nfour\nfive\n", "src/util.py": None,
                       "conf/settings.json": b'{"debug": true}\n'})
    theirs = edit(BASE, {"src/app.py": b"one\nTWO (theirs)\nthree\nfour\nfive\n", "src/util.py": b"def util():\n    return 2\n",
                         "docs/guide.md": b"Guide v2\n"})
    world = World(client, alice, ours, theirs)
    analysis = analyze(client, alice, world.feature["id"])
    assert analysis["can_auto_sync"] is False
    predicted = {(c["path"], c["kind"]) for c in analysis["conflicts_predicted"]}
    assert predicted == {("src/app.py", "modify/modify"), ("src/util.py", "delete/modify")}
    assert "decision" in analysis["recommendation"]
    preview = world.prepare()
    assert {(d["path"], d["kind"]) for d in preview["decisions_needed"]} == predicted


def test_the_model_writes_the_text_not_the_facts(client, alice, platform):
    ours = edit(BASE, {"src/app.py": b"one\nTWO (ours)\nthree\nfour\nfive\n"})
    theirs = edit(BASE, {"src/app.py": b"one\nTWO (theirs)\nthree\nfour\nfive\n"})
    world = World(client, alice, ours, theirs)
    text = json.dumps({"source_changes_summary": "Both sides edited line two of src/app.py.",
                       "recommendation": "Pick a version of src/app.py in the sync preview."})
    with JsonModelServer(text) as server:
        use_model(platform, server)
        analysis = analyze(client, alice, world.feature["id"])
    assert analysis["provider"] == "openai" and analysis["model"] == "json-model"
    assert analysis["source_changes_summary"] == "Both sides edited line two of src/app.py."
    assert analysis["can_auto_sync"] is False and analysis["conflicts_predicted"] == [{"path": "src/app.py", "kind": "modify/modify"}]
    facts = server.requests[0]["body"]["messages"][0]["content"]
    assert '"can_auto_sync": false' in facts


def test_analyze_refusals_and_another_users_workspace(client, alice, bob):
    world = World(client, alice, BASE, BASE)
    assert_problem(client.post(f"/v1/workspaces/{world.main['id']}/drift/analyze", headers=alice.headers), 409, "sync_with_itself")
    assert_problem(client.post(f"/v1/workspaces/{world.feature['id']}/drift/analyze", headers=bob.headers), 404, "not_found")
    up_to_date = analyze(client, alice, world.feature["id"])
    assert up_to_date["can_auto_sync"] is True and up_to_date["files_affected"] == 0 and up_to_date["risk_level"] == "none"


def test_analysis_and_extraction_spend_the_ai_budget(client, alice, platform):
    ours = edit(BASE, {"src/app.py": b"one\nTWO (ours)\nthree\nfour\nfive\n"})
    world = World(client, alice, ours, BASE)
    text = json.dumps({"source_changes_summary": "One edit.", "recommendation": "Sync."})
    with JsonModelServer(text) as server:
        use_model(platform, server, ai_budget_calls=1)
        analyze(client, alice, world.feature["id"])
        refused = client.post(f"/v1/workspaces/{world.feature['id']}/drift/analyze", headers=alice.headers)
        assert_problem(refused, 429, "ai_rate_limited")
        extract = client.post(f"/v1/projects/{world.project['id']}/decisions/extract", headers=alice.headers)
    assert extract.status_code == 201  # no conversation: nothing to ask the model, nothing spent
    assert len(server.requests) == 1
