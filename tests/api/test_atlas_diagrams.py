"""Atlas diagrams: dependency and component from the graph (aggregated when big), flow and sequence
from the import graph without a model (and saying so), stored and listed."""

from __future__ import annotations

import pytest

from tests.api.test_atlas import pushed, shop
from tests.api.trees import new_project
from tests.conftest import assert_problem


@pytest.fixture
def indexed(client, alice):
    return shop(client, alice, indexed=True)[0]


def draw(client, caller, project_id, **body):
    response = client.post(f"/v1/projects/{project_id}/atlas/diagrams", headers=caller.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()["diagram"]


def test_dependency_diagram_of_a_small_project_shows_modules_and_imports(client, alice, indexed):
    diagram = draw(client, alice, indexed, type="dependency")
    labels = {n["label"] for n in diagram["nodes"]}
    assert "api/shop/models.py" in labels and "web/src/cart.ts" in labels
    assert diagram["mermaid"].startswith("flowchart LR") and len(diagram["edges"]) >= 5
    assert diagram["source"]["kind"] == "graph"


def test_component_flow_and_sequence_without_a_model(client, alice, indexed):
    component = draw(client, alice, indexed, type="component")
    assert component["mermaid"].startswith("flowchart TB") and "subgraph" in component["mermaid"]
    assert {n["id"] for n in component["nodes"]} >= {"api/shop", "web/src"}
    flow = draw(client, alice, indexed, type="flow")
    assert flow["source"]["kind"] == "graph" and flow["source"]["note"].startswith("model_not_configured")
    assert flow["mermaid"].startswith("flowchart TD")
    sequence = draw(client, alice, indexed, type="sequence")
    assert sequence["mermaid"].startswith("sequenceDiagram") and "->>" in sequence["mermaid"]
    listed = client.get(f"/v1/projects/{indexed}/atlas/diagrams", headers=alice.headers).json()["diagrams"]
    assert [d["type"] for d in listed] == ["sequence", "flow", "component"]


def test_diagram_of_one_concept(client, alice, indexed):
    concepts = client.get(f"/v1/projects/{indexed}/atlas", headers=alice.headers, params={"layer": "module"}).json()["concepts"]
    models = next(c for c in concepts if c["path"] == "api/shop/models.py")
    diagram = draw(client, alice, indexed, type="dependency", concept_id=models["id"])
    assert diagram["nodes"][0]["label"] == "api/shop/models.py" and diagram["concept_id"] == models["id"]
    assert {n["label"] for n in diagram["nodes"]} >= {"api/shop/handlers/payments.py", "api/shop/handlers/orders.py"}
    assert_problem(client.post(f"/v1/projects/{indexed}/atlas/diagrams", headers=alice.headers,
                               json={"type": "dependency", "concept_id": "con_nope"}), 404, "not_found")


def test_a_big_system_is_aggregated_within_mermaids_limits(client, alice):
    files = {}
    for package in range(30):
        for module in range(30):
            imports = "".join(f"from pkg{(package + k) % 30}.mod{(module * 7 + k) % 30} import thing\n" for k in range(1, 4))
            files[f"src/pkg{package}/mod{module}.py"] = f"{imports}\n\ndef thing():\n    return {module}\n".encode()
    project = {"id": pushed(client, alice, files, "big", indexed=True)[0]}
    diagram = draw(client, alice, project["id"], type="dependency")
    assert 4 <= len(diagram["nodes"]) <= 40 and all(n["id"].startswith("src/pkg") for n in diagram["nodes"])
    assert len(diagram["edges"]) <= 500 and len(diagram["mermaid"]) <= 50_000
    assert "aggregated" in diagram["title"] and "imports" in diagram["edges"][0]["label"]


def test_diagrams_need_an_index(client, alice):
    project = new_project(client, alice, "none")
    assert_problem(client.post(f"/v1/projects/{project['id']}/atlas/diagrams", headers=alice.headers,
                               json={"type": "dependency"}), 409, "atlas_not_indexed")


def test_flow_written_by_the_model_is_validated_and_says_so(client, alice, indexed, platform):
    import json

    from tests.api.json_model_server import JsonModelServer, use_model

    steps = {"title": "Creating an order", "steps": [
        {"from": "create_app", "to": "connect", "label": "opens the database"},
        {"from": "create_app", "to": "OrderHandler", "label": "builds"},
        {"from": "OrderHandler", "to": "Order", "label": "create()"}]}
    concepts = client.get(f"/v1/projects/{indexed}/atlas", headers=alice.headers, params={"layer": "module"}).json()["concepts"]
    app = next(c for c in concepts if c["path"] == "api/shop/app.py")
    with JsonModelServer("no diagram here", json.dumps(steps)) as server:
        use_model(platform, server)
        flow = draw(client, alice, indexed, type="flow", concept_id=app["id"])
        sequence = draw(client, alice, indexed, type="sequence", concept_id=app["id"])
    assert flow["source"] == {"kind": "model", "provider": "openai", "model": "json-model", "note": None}
    assert flow["title"] == "Creating an order" and {n["id"] for n in flow["nodes"]} == {"create_app", "connect", "OrderHandler", "Order"}
    assert flow["mermaid"].startswith("flowchart TD") and "opens the database" in flow["mermaid"]
    assert sequence["mermaid"].startswith("sequenceDiagram") and "create()" not in sequence["mermaid"].split("->>")[0]
    prompt = server.requests[0]["body"]["messages"][0]["content"]
    assert "api/shop/app.py" in prompt and "create_app" in prompt
    assert len(server.requests) == 3  # one invalid answer retried once, then one call for the sequence


def test_a_flat_package_draws_its_most_important_modules_and_says_what_it_left_out(client, alice):
    files = {"pkg/__init__.py": b"", "pkg/core.py": b"def thing():\n    return 0\n"}
    for module in range(99):
        imports = "from pkg.core import thing\n" + (f"from pkg.mod{(module + 1) % 99} import thing\n" if module % 3 else "")
        files[f"pkg/mod{module}.py"] = f"{imports}\n\ndef thing():\n    return {module}\n".encode()
    project = {"id": pushed(client, alice, files, "flat", indexed=True)[0]}
    dependency = draw(client, alice, project["id"], type="dependency")
    labels = [n["label"] for n in dependency["nodes"]]
    assert len(labels) == 60 and labels[0] == "pkg/core.py"  # most imported first, not one "pkg" box
    assert "the 60 most important of 101 modules" in dependency["title"]
    omitted = dependency["source"]["omitted"]
    assert omitted["modules"] == 41 and omitted["imports"] > 0 and omitted["nodes"] == omitted["edges"] == 0
    assert dependency["source"]["note"].startswith(f"41 modules and {omitted['imports']} imports not drawn")
    component = draw(client, alice, project["id"], type="component")
    assert len(component["nodes"]) == 60 and "subgraph" in component["mermaid"]
    assert component["source"]["omitted"]["modules"] == 41
