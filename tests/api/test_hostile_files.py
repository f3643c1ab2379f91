"""One file that cannot be parsed (nested 10,000 deep, which makes Python's parsers raise
RecursionError) never stops the analysis of the others: the committed key beside it is still an
action item, and detection and deploy answer about the rest of the tree."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from tests.api.test_action_items import LEAKY, items
from tests.api.test_deployments import pushed
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree

DEEP_TOML = b"x = " + b"[" * 10_000 + b"\n"
DEEP_JSON = b"[" * 100_000


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000)


HOSTILE = {
    "pyproject.toml": DEEP_TOML,
    "package.json": DEEP_JSON,
    "wrangler.toml": DEEP_TOML,
    "sub/wrangler.jsonc": DEEP_JSON,
    "index.html": b"<h1>hi</h1>",
    "config/settings.py": LEAKY,
}


def test_a_hostile_file_does_not_hide_a_committed_key(client, alice):
    project = new_project(client, alice)
    head = snapshot(client, alice, project["id"], upload_tree(client, alice, HOSTILE))
    new_workspace(client, alice, project["id"], base_snapshot_id=head["id"])
    found = items(client, alice)
    assert any(i["type"] == "secrets" and "config/settings.py" in i["title"] for i in found), found


def test_detect_and_deploy_answer_about_the_rest(client, alice, deploy_target):
    deploy_target.ready(alice)
    project, _, _, _ = pushed(client, alice, HOSTILE)
    detected = client.get(f"/v1/infrastructure/projects/{project['id']}/detect", headers=alice.headers)
    assert detected.status_code == 200, detected.text
    notes = " ".join(detected.json()["detection"]["notes"])
    assert "package.json could not be read (not JSON: nested too deeply)" in notes
    assert "wrangler.toml could not be read (not TOML: nested too deeply)" in notes
    deployed = client.post(f"/v1/infrastructure/projects/{project['id']}/deploy", headers=alice.headers, json={})
    assert deployed.status_code == 200, deployed.text
