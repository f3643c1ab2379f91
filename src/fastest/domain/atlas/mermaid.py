"""Mermaid source for Atlas diagrams, kept within Mermaid's own limits (`maxEdges` 500, `maxTextSize`
50,000 characters): labels are quoted and escaped, and a graph too big is cut by importance (the
caller orders nodes and edges best first) before it reaches those limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

MAX_EDGES = 500
MAX_CHARS = 50_000
MAX_NODES = 300
_UNSAFE = re.compile(r"[\"\\`<>{}\[\]|;#\n\r\t]")


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label: str
    group: str | None = None  # a subgraph (component diagrams)


@dataclass(frozen=True, slots=True)
class Arrow:
    source: str
    target: str
    label: str | None = None


@dataclass(slots=True)
class Drawing:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Arrow] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)  # group id → label


def clean(label: str, limit: int = 80) -> str:
    text = _UNSAFE.sub(" ", label).strip()
    text = re.sub(r"\s+", " ", text)
    return (text[: limit - 1] + "…") if len(text) > limit else (text or "?")


def _bounded(drawing: Drawing) -> Drawing:
    nodes = drawing.nodes[:MAX_NODES]
    kept = {n.id for n in nodes}
    edges = [e for e in drawing.edges if e.source in kept and e.target in kept][:MAX_EDGES]
    return Drawing(nodes=nodes, edges=edges, groups=drawing.groups)


def _fit(render, drawing: Drawing) -> tuple[str, Drawing]:
    """Render; while the text is over MAX_CHARS, drop the least important half of what is left."""
    drawing = _bounded(drawing)
    text = render(drawing)
    while len(text) > MAX_CHARS and len(drawing.nodes) > 1:
        keep = max(1, len(drawing.nodes) * 2 // 3)
        drawing = _bounded(Drawing(nodes=drawing.nodes[:keep], edges=drawing.edges, groups=drawing.groups))
        text = render(drawing)
    return text, drawing


def _aliases(nodes: Sequence[Node]) -> dict[str, str]:
    return {node.id: f"n{i}" for i, node in enumerate(nodes)}


def flowchart(drawing: Drawing, *, direction: str = "LR") -> tuple[str, Drawing]:
    def render(d: Drawing) -> str:
        alias = _aliases(d.nodes)
        lines = [f"flowchart {direction}"]
        grouped: dict[str | None, list[Node]] = {}
        for node in d.nodes:
            grouped.setdefault(node.group if node.group in d.groups else None, []).append(node)
        for group, members in grouped.items():
            indent = "    "
            if group is not None:
                lines.append(f'    subgraph g{list(d.groups).index(group)}["{clean(d.groups[group])}"]')
                indent = "        "
            for node in members:
                lines.append(f'{indent}{alias[node.id]}["{clean(node.label)}"]')
            if group is not None:
                lines.append("    end")
        for edge in d.edges:
            if edge.label:
                lines.append(f'    {alias[edge.source]} -->|"{clean(edge.label, 40)}"| {alias[edge.target]}')
            else:
                lines.append(f"    {alias[edge.source]} --> {alias[edge.target]}")
        return "\n".join(lines) + "\n"

    return _fit(render, drawing)


def sequence(drawing: Drawing) -> tuple[str, Drawing]:
    """Participants are the nodes (in order), messages the edges (in order)."""

    def render(d: Drawing) -> str:
        alias = _aliases(d.nodes)
        lines = ["sequenceDiagram"]
        for node in d.nodes:
            lines.append(f"    participant {alias[node.id]} as {clean(node.label).replace(':', ' ')}")
        for edge in d.edges:
            label = clean(edge.label or "uses", 60).replace(":", " ")
            lines.append(f"    {alias[edge.source]}->>{alias[edge.target]}: {label}")
        return "\n".join(lines) + "\n"

    return _fit(render, drawing)
