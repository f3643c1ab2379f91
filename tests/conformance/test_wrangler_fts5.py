"""The Atlas's SQL on real local D1 (wrangler's workerd): FTS5 with BM25 ranking and the query
syntax `atlas_search` builds, the JSON arrow operators and UPDATE … FROM the indexer uses."""

from __future__ import annotations

import pytest

from fastest.services.intelligence.atlas_search import fts_query
from tests.conformance.test_wrangler_d1 import WRANGLER, local_d1  # noqa: F401  (the module fixture)

pytestmark = [
    pytest.mark.wrangler,
    pytest.mark.skipif(not WRANGLER.exists(), reason="wrangler is not installed: run `npm ci`"),
]


def test_fts5_bm25_search_on_d1(local_d1):  # noqa: F811
    local_d1(
        "INSERT INTO users (id, email, created_at, updated_at) VALUES ('usr_fts', 'fts@example.com', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');"
        "INSERT INTO projects (id, user_id, name, created_at, updated_at, last_activity_at) VALUES "
        "('prj_fts', 'usr_fts', 'fts', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');"
        "INSERT INTO atlas_concepts (id, project_id, layer, kind, name, path, description) "
        "SELECT value ->> 0, 'prj_fts', 'code', 'function', value ->> 1, value ->> 2, value ->> 3 FROM json_each("
        "'[[\"con_a\", \"parse_config\", \"app/config.py\", \"Read the YAML settings file\"],"
        "[\"con_b\", \"charge\", \"app/pay.py\", \"Charge a credit card\"],"
        "[\"con_c\", \"config_path\", \"app/paths.py\", \"Where the config lives\"]]');"
        "INSERT INTO atlas_fts (rowid, name, body, scope) SELECT seq, replace(name, '_', ' '), description, 'fts' "
        "FROM atlas_concepts WHERE project_id = 'prj_fts';"
    )
    match = fts_query("prj_fts", "configs", mode="any").replace("'", "''")  # stemmed, as a prefix
    rows = local_d1(
        "SELECT c.name, f.score FROM (SELECT rowid, bm25(atlas_fts, 3.0, 1.0, 0.0) AS score FROM atlas_fts WHERE atlas_fts "
        f"MATCH '{match}' ORDER BY score LIMIT 10) f JOIN atlas_concepts c ON c.seq = f.rowid ORDER BY f.score"
    )
    assert {r["name"] for r in rows} == {"parse_config", "config_path"} and all(r["score"] < 0 for r in rows)
    # A name that starts with a word (`^`): how a question's word finds the symbol it names.
    assert [r["name"] for r in local_d1(
        "SELECT c.name FROM atlas_fts f JOIN atlas_concepts c ON c.seq = f.rowid WHERE atlas_fts MATCH "
        "'scope : \"fts\" AND name : (^\"config\" OR ^\"charge\")' ORDER BY c.name")] == ["charge", "config_path"]
    both = fts_query("prj_fts", "read yaml config").replace("'", "''")  # every word, in the name or the body
    assert [r["name"] for r in local_d1(
        "SELECT c.name FROM (SELECT rowid, rank FROM atlas_fts WHERE atlas_fts MATCH "
        f"'{both}' ORDER BY rank LIMIT 10) f JOIN atlas_concepts c ON c.seq = f.rowid ORDER BY f.rank")] == ["parse_config"]
    assert local_d1("SELECT term, doc FROM atlas_fts_terms WHERE term IN ('config', 'yaml') ORDER BY term") == [
        {"term": "config", "doc": 2}, {"term": "yaml", "doc": 1}]  # fts5vocab: how common each word is
    # The compaction after a big index (a bounded merge on D1, where the table holds every project).
    local_d1("INSERT INTO atlas_fts (atlas_fts, rank) VALUES ('merge', 4000)")
    other_scope = fts_query("prj_other", "parse config").replace("'", "''")
    assert local_d1(f"SELECT rowid FROM atlas_fts WHERE atlas_fts MATCH '{other_scope}'") == []
    # The indexer's UPDATE … FROM json_each with ->> (the PageRank write).
    local_d1("UPDATE atlas_concepts SET rank = j.value ->> 1 FROM json_each('[[\"app/pay.py\", 2.5]]') j "
             "WHERE atlas_concepts.project_id = 'prj_fts' AND atlas_concepts.path = j.value ->> 0")
    assert local_d1("SELECT rank FROM atlas_concepts WHERE id = 'con_b'") == [{"rank": 2.5}]
