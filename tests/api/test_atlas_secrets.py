"""A committed secret never travels into the Atlas: the value the secret scanner flags is masked in a
constant's signature, a docstring, and the text index, so neither the graph nor a search shows it."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from tests.api.test_atlas import all_concepts, index, push
from tests.api.trees import new_project, new_workspace
from tests.conftest import count_rows

AWS = "AKIAZ7VRSQ5TKHJ3XQPL"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
FILES = {
    "config/settings.py": (f'"""Settings. The old key was {STRIPE}."""\n\nAWS_ACCESS_KEY_ID = "{AWS}"\n'
                           f'DEBUG = False\n\n\ndef client(key: str = "{AWS}"):\n    """Talks to S3."""\n').encode(),
    "web/keys.ts": f'export const STRIPE_KEY = "{STRIPE}";\n'.encode(),
}


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000)


def test_committed_secrets_are_masked_in_the_atlas(client, alice, platform):
    project = new_project(client, alice, "leaky")
    workspace = new_workspace(client, alice, project["id"])
    push(client, alice, project["id"], workspace["id"], FILES)
    assert index(client, alice, project["id"])["status"] == "ready"

    concepts, _, _ = all_concepts(client, alice, project["id"])
    by_name = {c["name"]: c for c in concepts}
    assert {"AWS_ACCESS_KEY_ID", "STRIPE_KEY", "client", "DEBUG"} <= by_name.keys()
    assert "[redacted]" in by_name["AWS_ACCESS_KEY_ID"]["signature"] and "[redacted]" in by_name["STRIPE_KEY"]["signature"]
    assert by_name["DEBUG"]["signature"] == "DEBUG = False"
    shown = repr(concepts)
    assert AWS not in shown and STRIPE not in shown
    for query in (AWS, STRIPE, "AKIAZ7VRSQ5TKHJ3XQPL", "sk_live"):
        found = client.post(f"/v1/projects/{project['id']}/atlas/search", headers=alice.headers, json={"query": query})
        assert found.status_code == 200 and AWS not in found.text and STRIPE not in found.text
    for table, column in (("atlas_concepts", "description"), ("atlas_concepts", "data"), ("atlas_fts", "body")):
        assert count_rows(platform, f"SELECT COUNT(*) AS n FROM {table} WHERE {column} LIKE ? OR {column} LIKE ?",
                          f"%{AWS}%", f"%{STRIPE}%") == 0, table
