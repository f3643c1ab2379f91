"""A new user pushes a real project, runs `fastest atlas index` (a tree larger than one request's
budget: progress while it finishes in the background), searches it, and gets next steps — the real
CLI against the real server, both as subprocesses."""

from __future__ import annotations

from pathlib import Path

from tests.api.atlas_project import FILES
from tests.e2e.conftest import Cli, admin_token, running_server, write


def test_push_index_search_next(cli: Cli, tmp_path: Path):
    env = {"FASTEST_RATE_LIMIT_PER_MINUTE": "100000", "FASTEST_AI_RATE_LIMIT_PER_MINUTE": "1000",
           "FASTEST_ATLAS_REQUEST_FILES": "4", "FASTEST_ATLAS_STEP_FILES": "3"}
    with running_server(tmp_path / "data", env) as (base_url, _):
        cli("login", "--server", base_url, "--token", admin_token(tmp_path / "data", "atlas@example.com"), cwd=tmp_path)
        folder = tmp_path / "shop"
        for path, content in FILES.items():
            write(folder / path, content)
        cli("init", "--project", "shop", cwd=folder)
        cli("push", "-m", "first", cwd=folder)

        indexed = cli("atlas", "index", cwd=folder)
        assert "indexed snp_" in indexed.stdout and "1 file(s) did not parse" in indexed.stdout
        assert "  api/shop/broken.py: SyntaxError: " in indexed.stdout and "(line " in indexed.stdout  # which, and why
        assert "indexing…" in indexed.stderr  # progress while the rest went on in the background

        found = cli("atlas", "search", "OrderHandler", cwd=folder)
        assert found.stdout.splitlines()[0].split()[:2] == ["code", "OrderHandler"]
        semantic = cli.json("atlas", "search", "checkout", "button", cwd=folder)
        assert semantic["results"] and semantic["results"][0]["path"].startswith("web/src/")

        again = cli.json("atlas", "index", cwd=folder)
        assert again["status"] == "ready" and again["reused"]["directories"] == 1

        generated = cli("next", "generate", cwd=folder)
        assert "new step(s) from rules" in generated.stdout and "Fix 1 file(s) that do not parse" in generated.stdout
        listed = cli.json("next", cwd=folder)
        assert listed["next_steps"] and all(s["status"] == "pending" for s in listed["next_steps"])
