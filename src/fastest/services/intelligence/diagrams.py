"""Diagrams of the Atlas: `dependency` and `component` from the graph (aggregated to the top-level
parts of a big system), `flow` and `sequence` written by the model when one is configured (validated,
else derived from the import graph, and the diagram's `source` says which)."""

from __future__ import annotations

import json
import posixpath
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fastest.domain.atlas.mermaid import Arrow, Drawing, Node, flowchart, sequence
from fastest.errors import Conflict, NotFound
from fastest.platform import Platform
from fastest.services import projects
from fastest.services.ai import ai_budget, models
from fastest.services.common import new_id, now_iso, split_page

SMALL_GRAPH = 40  # modules drawn one by one up to this many; beyond, directories aggregated
MIN_GROUPS = 6  # fewer directory nodes than this says nothing: draw the top modules instead
TOP_MODULES = 60  # modules drawn when a big graph does not aggregate into enough directories
NEIGHBOURHOOD = 40
FLOW_NODES = 30


async def _modules(platform: Platform, project_id: str) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    rows = (await platform.db.prepare(
        "SELECT c.id, c.path, c.rank, f.system_path FROM atlas_concepts c LEFT JOIN atlas_files f "
        "ON f.project_id = c.project_id AND f.path = c.path WHERE c.project_id = ? AND c.layer = 'module'"
    ).bind(project_id).all()).results
    if not rows:
        raise Conflict("The Atlas of this project is empty: index it first (POST …/atlas/index).", code="atlas_not_indexed")
    modules = {r["id"]: r for r in rows}
    edges = [(e["source_id"], e["target_id"]) for e in (await platform.db.prepare(
        "SELECT source_id, target_id FROM atlas_edges WHERE project_id = ? AND kind = 'imports'"
    ).bind(project_id).all()).results]
    return modules, edges


def _group_key(path: str, depth: int) -> str:
    parts = path.split("/")[:-1]
    return "/".join(parts[:depth]) if parts else "(root files)"


def _aggregate_level(paths: list[str]) -> int | None:
    """The directory depth at which the modules fall into a readable number of parts
    (MIN_GROUPS–40), or None when no depth does (one flat package, or hundreds of directories)."""
    for depth in range(1, 6):
        count = len({_group_key(p, depth) for p in paths})
        if count > 40:
            return None
        if count >= MIN_GROUPS:
            return depth
    return None


def _aggregated(modules: dict[str, dict[str, Any]], edges: list[tuple[str, str]], key) -> Drawing:
    weight: dict[str, float] = {}
    size: dict[str, int] = {}
    group_of = {}
    for cid, module in modules.items():
        group = key(module)
        group_of[cid] = group
        weight[group] = weight.get(group, 0.0) + (module["rank"] or 0.0)
        size[group] = size.get(group, 0) + 1
    counts: dict[tuple[str, str], int] = {}
    for source, target in edges:
        a, b = group_of.get(source), group_of.get(target)
        if a is None or b is None or a == b:
            continue
        counts[(a, b)] = counts.get((a, b), 0) + 1
    order = sorted(weight, key=lambda g: (-weight[g], g))
    nodes = [Node(id=g, label=f"{g} ({size[g]} files)") for g in order]
    arrows = [Arrow(a, b, f"{n} import{'s' if n != 1 else ''}") for (a, b), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return Drawing(nodes=nodes, edges=arrows)


def _module_drawing(modules: dict[str, dict[str, Any]], chosen: list[str], edges: list[tuple[str, str]]) -> Drawing:
    keep = set(chosen)
    nodes = [Node(id=c, label=modules[c]["path"]) for c in chosen]
    arrows = [Arrow(s, t) for s, t in edges if s in keep and t in keep]
    return Drawing(nodes=nodes, edges=arrows)


async def _module_of(platform: Platform, project_id: str, concept_id: str) -> dict[str, Any]:
    row = await platform.db.prepare("SELECT * FROM atlas_concepts WHERE project_id = ? AND id = ?").bind(project_id, concept_id).first()
    if row is None:
        raise NotFound("Concept not found.")
    return row


def _by_rank(modules: dict[str, dict[str, Any]], ids) -> list[str]:
    return sorted(ids, key=lambda c: (-(modules[c]["rank"] or 0), modules[c]["path"]))


def _top_modules(scope: dict[str, dict[str, Any]], edges: list[tuple[str, str]], group=None) -> tuple[str, Drawing]:
    """The most important modules (PageRank) of a graph too big to draw whole that no directory
    level summarises; the drawing's note says how many modules and imports were left out."""
    chosen = _by_rank(scope, scope)[:TOP_MODULES]
    drawing = _module_drawing(scope, chosen, edges)
    if group is not None:
        drawing.nodes = [Node(id=n.id, label=n.label, group=group(scope[n.id])) for n in drawing.nodes]
        drawing.groups = {g: g for g in dict.fromkeys(n.group for n in drawing.nodes) if g is not None}
    return f"the {len(chosen)} most important of {len(scope)} modules (by import rank)", drawing


def dependency_drawing(modules, edges, focus: dict[str, Any] | None) -> tuple[str, Drawing]:
    if focus is not None and focus["layer"] != "system":
        center = next((c for c, m in modules.items() if m["path"] == focus["path"]), None)
        if center is None:
            raise NotFound("Concept not found.")
        out = [t for s, t in edges if s == center]
        inward = [s for s, t in edges if t == center]
        chosen = [center] + _by_rank(modules, set(out + inward) - {center})[:NEIGHBOURHOOD]
        return f"Dependencies of {modules[center]['path']}", _module_drawing(modules, chosen, edges)
    scope = modules
    title = "Module dependencies"
    if focus is not None:  # a system: its own modules
        prefix = focus["path"]
        scope = {c: m for c, m in modules.items() if not prefix or m["path"].startswith(prefix + "/")}
        title = f"Dependencies inside {prefix or 'the repository'}"
    if len(scope) <= SMALL_GRAPH:
        return title, _module_drawing(scope, _by_rank(scope, scope), edges)
    paths = [m["path"] for m in scope.values()]
    base = (focus["path"] + "/") if focus is not None and focus["path"] else ""
    depth = _aggregate_level([p[len(base):] for p in paths])
    if depth is None:
        what, drawing = _top_modules(scope, edges)
        return f"{title} ({what})", drawing
    drawing = _aggregated(scope, edges, lambda m: base + _group_key(m["path"][len(base):], depth) if base else _group_key(m["path"], depth))
    return f"{title} (aggregated by directory)", drawing


def component_drawing(modules, edges) -> tuple[str, Drawing]:
    """Each system's parts: its directories at the first depth that gives a readable number of them,
    else its most important modules, grouped by system."""
    systems = sorted({m["system_path"] or "" for m in modules.values()})

    def inside(module: dict[str, Any]) -> tuple[str, str]:
        system = module["system_path"] or ""
        return system, (module["path"][len(system) + 1:] if system else module["path"])

    def key_at(depth: int):
        def key(module: dict[str, Any]) -> str:
            system, rest = inside(module)
            parts = rest.split("/")[:-1]
            part = "/".join(parts[:depth]) if parts else "(files)"
            return f"{system}/{part}" if system else part
        return key

    def group_of(node_id: str) -> str:
        owner = max((s for s in systems if s and (node_id == s or node_id.startswith(s + "/"))), key=len, default="")
        return owner or "(root)"

    for depth in (1, 2, 3):
        key = key_at(depth)
        count = len({key(m) for m in modules.values()})
        if count > 40:
            break
        if count >= MIN_GROUPS or len(modules) <= SMALL_GRAPH and depth == 1 and count > 1:
            drawing = _aggregated(modules, edges, key)
            if len(systems) > 1:
                drawing.groups = {s or "(root)": (s or "repository root") for s in systems}
                drawing.nodes = [Node(id=n.id, label=n.label, group=group_of(n.id)) for n in drawing.nodes]
            return "Components", drawing
    if len(modules) <= SMALL_GRAPH:
        drawing = _module_drawing(modules, _by_rank(modules, modules), edges)
        return "Components (modules)", drawing
    what, drawing = _top_modules(modules, edges, group=lambda m: posixpath.dirname(m["path"]) or "(root)")
    return f"Components ({what})", drawing


def _omitted(modules: dict[str, dict[str, Any]], edges: list[tuple[str, str]], drawing: Drawing,
             scope: set[str] | None = None) -> dict[str, Any]:
    """What a drawing of modules leaves out of the graph (or of `scope`): modules and imports not drawn."""
    scope = scope if scope is not None else set(modules)
    drawn = {n.id for n in drawing.nodes}
    if not drawn <= set(modules):  # an aggregated drawing: every module is inside some node
        return {"modules": 0, "imports": 0}
    inner = [(s, t) for s, t in edges if s in scope and t in scope]
    shown = {(e.source, e.target) for e in drawing.edges}
    return {"modules": len(scope - drawn), "imports": sum(1 for e in inner if e not in shown)}


def _entry(modules, edges) -> str:
    imported = {t for _, t in edges}
    importers = {s for s, _ in edges}
    roots = [c for c in modules if c in importers and c not in imported] or list(modules)
    return max(roots, key=lambda c: (sum(1 for s, _ in edges if s == c), modules[c]["rank"] or 0, modules[c]["path"]))


def graph_flow(modules, edges, start: str) -> Drawing:
    """Breadth first along the imports from `start`: what it reaches, in order."""
    seen = [start]
    queue = deque([start])
    arrows: list[Arrow] = []
    outgoing: dict[str, list[str]] = {}
    for s, t in edges:
        outgoing.setdefault(s, []).append(t)
    while queue and len(seen) < FLOW_NODES:
        current = queue.popleft()
        for target in _by_rank(modules, outgoing.get(current, [])):
            arrows.append(Arrow(current, target, "imports"))
            if target not in seen and len(seen) < FLOW_NODES:
                seen.append(target)
                queue.append(target)
    return Drawing(nodes=[Node(id=c, label=modules[c]["path"]) for c in seen], edges=arrows)


class _Step(BaseModel):
    model_config = ConfigDict(extra="ignore")
    source: str = Field(alias="from", min_length=1, max_length=80)
    target: str = Field(alias="to", min_length=1, max_length=80)
    label: str = Field(default="", max_length=80)


class _ModelDiagram(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str = Field(default="", max_length=120)
    steps: list[_Step] = Field(min_length=1, max_length=60)


async def _model_steps(platform: Platform, model, user_id: str, project_id: str, kind: str, start_path: str, modules, edges) -> _ModelDiagram | None:
    symbols = (await platform.db.prepare(
        "SELECT name, kind, data FROM atlas_concepts WHERE project_id = ? AND layer = 'code' AND path = ? ORDER BY start_line LIMIT 40"
    ).bind(project_id, start_path).all()).results
    reach = graph_flow(modules, edges, next(c for c, m in modules.items() if m["path"] == start_path))
    context = {
        "module": start_path,
        "symbols": [{"name": s["name"], "kind": s["kind"], "signature": json.loads(s["data"]).get("signature", "")} for s in symbols],
        "imports": [{"from": modules[a.source]["path"], "to": modules[a.target]["path"]} for a in reach.edges[:60]],
    }
    prompt = (
        f"Describe the {'control flow' if kind == 'flow' else 'sequence of calls between modules'} of `{start_path}` "
        "as a diagram, using only the names given below. Answer with JSON only: "
        '{"title": str, "steps": [{"from": str, "to": str, "label": str}]} (at most 30 steps).\n\n'
        + json.dumps(context)
    )
    schema = {"name": "diagram", "schema": _ModelDiagram.model_json_schema(by_alias=True)}
    messages = [{"role": "user", "content": prompt}]
    for _ in range(2):
        await ai_budget.spend(platform, user_id)
        try:
            answer = await model.complete(messages, temperature=0, max_tokens=1200,
                                          response_format={"type": "json_schema", "json_schema": schema})
            return _ModelDiagram.model_validate_json(_json_text(str(answer.get("content") or "")))
        except (ValidationError, ValueError):
            messages = messages + [{"role": "user", "content": "That was not valid JSON of the requested shape. Answer with the JSON only."}]
        except Exception:
            return None
    return None


def _omission_note(left_out: dict[str, int]) -> str:
    parts = []
    if left_out.get("modules"):
        parts.append(f"{left_out['modules']} modules and {left_out['imports']} imports not drawn")
    elif left_out.get("imports"):
        parts.append(f"{left_out['imports']} imports not drawn")
    if left_out["nodes"] or left_out["edges"]:
        parts.append(f"{left_out['nodes']} nodes and {left_out['edges']} arrows cut to stay within Mermaid's limits")
    return "; ".join(parts) + " (the least important first, by import rank)."


def _json_text(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if start >= 0 and end > start else text


def diagram_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "type": row["type"], "title": row["title"], "concept_id": row["concept_id"],
        "nodes": json.loads(row["nodes"]), "edges": json.loads(row["edges"]), "mermaid": row["mermaid"],
        "source": json.loads(row["source"]), "created_at": row["created_at"],
    }


async def create(platform: Platform, user_id: str, project_id: str, kind: str, concept_id: str | None) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    modules, edges = await _modules(platform, project_id)
    focus = await _module_of(platform, project_id, concept_id) if concept_id else None
    source: dict[str, Any] = {"kind": "graph", "provider": None, "model": None, "note": None}
    if kind in ("dependency", "component"):
        title, drawing = dependency_drawing(modules, edges, focus) if kind == "dependency" else component_drawing(modules, edges)
        wanted = len(drawing.nodes), len(drawing.edges)
        text, drawing = flowchart(drawing, direction="LR" if kind == "dependency" else "TB")
        scope = None
        if kind == "dependency" and focus is not None and focus["layer"] == "system" and focus["path"]:
            scope = {c for c, m in modules.items() if m["path"].startswith(focus["path"] + "/")}
        left_out = {"nodes": wanted[0] - len(drawing.nodes), "edges": wanted[1] - len(drawing.edges)}
        if focus is None or focus["layer"] == "system":
            left_out.update(_omitted(modules, edges, drawing, scope))
        source["omitted"] = left_out
        if any(left_out.values()):
            source["note"] = _omission_note(left_out)
    else:
        if focus is not None and focus["layer"] != "system":
            start = next((c for c, m in modules.items() if m["path"] == focus["path"]), None) or _entry(modules, edges)
        else:
            start = _entry(modules, edges)
        start_path = modules[start]["path"]
        model = await models.for_user(platform, user_id)
        steps = None
        if models.is_model(model):
            steps = await _model_steps(platform, model, user_id, project_id, kind, start_path, modules, edges)
            if steps is None:
                source["note"] = "The model's answer was not a valid diagram twice; this one is derived from the import graph."
            else:
                source = {"kind": "model", "provider": model.provider, "model": model.model, "note": None}
        else:
            source["note"] = ("model_not_configured: no AI model is configured, so this diagram follows the import graph "
                              "from the module (what it imports, breadth first), not its runtime behaviour.")
        if steps is not None:
            names: list[str] = []
            for step in steps.steps:
                for name in (step.source, step.target):
                    if name not in names:
                        names.append(name)
            drawing = Drawing(nodes=[Node(id=n, label=n) for n in names],
                              edges=[Arrow(s.source, s.target, s.label or None) for s in steps.steps])
            title = steps.title or f"{kind.capitalize()} of {start_path}"
        else:
            drawing = graph_flow(modules, edges, start)
            title = f"{'Flow' if kind == 'flow' else 'Sequence'} from {start_path} (import graph)"
        text, drawing = flowchart(drawing, direction="TD") if kind == "flow" else sequence(drawing)
    nodes = [{"id": n.id, "label": n.label} for n in drawing.nodes]
    arrows = [{"source": e.source, "target": e.target, "label": e.label} for e in drawing.edges]
    row = {
        "id": new_id(platform, "dgm"), "type": kind, "title": title[:200], "concept_id": concept_id,
        "nodes": json.dumps(nodes), "edges": json.dumps(arrows), "mermaid": text, "source": json.dumps(source),
        "created_at": now_iso(platform),
    }
    snapshot = await platform.db.prepare("SELECT snapshot_id FROM atlas_indexes WHERE project_id = ?").bind(project_id).first("snapshot_id")
    await platform.db.prepare(
        "INSERT INTO atlas_diagrams (id, project_id, type, title, concept_id, nodes, edges, mermaid, source, snapshot_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ).bind(row["id"], project_id, kind, row["title"], concept_id, row["nodes"], row["edges"], text, row["source"], snapshot,
           row["created_at"]).run()
    return diagram_view(row)


async def list_page(platform: Platform, user_id: str, project_id: str, *, before: int | None, limit: int) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    sql = "SELECT * FROM atlas_diagrams WHERE project_id = ?"
    params: list[Any] = [project_id]
    if before is not None:
        sql += " AND seq < ?"
        params.append(before)
    rows = (await platform.db.prepare(sql + " ORDER BY seq DESC LIMIT ?").bind(*params, limit + 1).all()).results
    rows, next_cursor = split_page(rows, limit, lambda row: (row["seq"],))
    return {"diagrams": [diagram_view(r) for r in rows], "next_cursor": next_cursor}
