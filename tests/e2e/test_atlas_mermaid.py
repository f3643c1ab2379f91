"""Every Atlas diagram type renders with Mermaid itself: the `mermaid` npm package's browser build in
headless Chromium parses and renders each diagram's source, and any syntax error fails the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.atlas_project import FILES
from tests.api.test_atlas import index, push
from tests.api.trees import new_project, new_workspace
from tests.e2e.chromium import headless_chromium, needs_chromium

REPO = Path(__file__).resolve().parents[2]
MERMAID = REPO / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
pytestmark = [
    needs_chromium,
    pytest.mark.skipif(not MERMAID.exists(), reason="mermaid is not installed: run `npm ci`"),
]


@pytest.fixture
def settings():
    from fastest.config import Settings

    return Settings(ai_rate_limit_per_minute=100)


@pytest.fixture
def browser():
    with headless_chromium("--allow-file-access-from-files") as driver:
        driver.set_script_timeout(60)
        yield driver


def diagrams_of(client, caller, files) -> list[dict]:
    project = new_project(client, caller, f"p{len(files)}")
    workspace = new_workspace(client, caller, project["id"])
    push(client, caller, project["id"], workspace["id"], files)
    index(client, caller, project["id"])
    drawn = []
    for kind in ("dependency", "component", "flow", "sequence"):
        response = client.post(f"/v1/projects/{project['id']}/atlas/diagrams", headers=caller.headers, json={"type": kind})
        assert response.status_code == 201, response.text
        drawn.append(response.json()["diagram"])
    return drawn


def big_tree() -> dict[str, bytes]:
    files = {}
    for package in range(12):
        for module in range(15):
            imports = "".join(f"from pkg{(package + k) % 12}.mod{(module + k) % 15} import f\n" for k in range(1, 3))
            files[f"svc{package % 3}/pkg{package}/mod{module}.py"] = f"{imports}\n\ndef f():\n    return 1\n".encode()
        files[f"svc{package % 3}/pyproject.toml"] = b"[project]\nname = 'x'\n"
    return files


def flat_package() -> dict[str, bytes]:
    """One package of 100 modules: no directory level summarises it, so its most important modules
    are drawn (grouped by directory in the component diagram)."""
    files = {"flat/__init__.py": b""}
    for module in range(99):
        files[f"flat/mod{module}.py"] = f"from flat.mod{(module + 1) % 99} import f\n\n\ndef f():\n    return 1\n".encode()
    return files


def model_diagrams(client, caller, platform) -> list[dict]:
    """Flow and sequence written by a (loopback) model, with labels full of Mermaid's syntax."""
    from tests.api.json_model_server import JsonModelServer, use_model

    tricky = {"title": "t", "steps": [
        {"from": 'parse "args"', "to": "load[config]", "label": "reads: a;b #1 <x> {y} |z|"},
        {"from": "load[config]", "to": "Ünïcode → ok", "label": "end"},
        {"from": "Ünïcode → ok", "to": "Ünïcode → ok", "label": "loops"}]}
    project = client.get("/v1/projects", headers=caller.headers).json()["projects"][0]["id"]
    drawn = []
    with JsonModelServer(json.dumps(tricky)) as server:
        use_model(platform, server)
        for kind in ("flow", "sequence"):
            response = client.post(f"/v1/projects/{project}/atlas/diagrams", headers=caller.headers, json={"type": kind})
            assert response.status_code == 201 and response.json()["diagram"]["source"]["kind"] == "model", response.text
            drawn.append(response.json()["diagram"])
    return drawn


def test_every_diagram_type_renders_in_mermaid(client, alice, browser, tmp_path, platform):
    diagrams = diagrams_of(client, alice, FILES) + diagrams_of(client, alice, big_tree()) + diagrams_of(client, alice, flat_package())
    diagrams += model_diagrams(client, alice, platform)
    page = tmp_path / "render.html"
    page.write_text(
        "<!doctype html><html><body><div id='out'></div>"
        f"<script src='{MERMAID.as_uri()}'></script>"
        "<script>mermaid.initialize({startOnLoad: false, securityLevel: 'strict'});</script></body></html>"
    )
    browser.get(page.as_uri())
    results = browser.execute_async_script(
        """
        const sources = JSON.parse(arguments[0]);
        const done = arguments[arguments.length - 1];
        (async () => {
          const results = [];
          for (let i = 0; i < sources.length; i++) {
            try {
              await mermaid.parse(sources[i]);
              const { svg } = await mermaid.render('d' + i, sources[i]);
              results.push({ ok: svg.includes('<svg'), error: null });
            } catch (e) {
              results.push({ ok: false, error: String(e && e.message || e) });
            }
          }
          done(results);
        })();
        """,
        json.dumps([d["mermaid"] for d in diagrams]),
    )
    failures = [(d["type"], d["title"], r["error"], d["mermaid"][:500]) for d, r in zip(diagrams, results) if not r["ok"]]
    assert not failures, failures
    assert len(results) == 14
