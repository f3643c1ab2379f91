"""Project intelligence: the Atlas, diagrams, next steps, decisions, drift analysis."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from fastest.schemas.common import RequestModel, ResponseModel

Layer = Literal["system", "module", "code"]
DiagramType = Literal["flow", "dependency", "component", "sequence"]
StepStatus = Literal["pending", "started", "completed", "dismissed"]


class Reused(ResponseModel):
    directories: int
    files: int


class IndexProgress(ResponseModel):
    files_done: int
    directories_pending: int
    done: bool


class ParseFailure(ResponseModel):
    path: str
    parse_error: str  # why, with the line: "SyntaxError: invalid syntax (line 4)"


class AtlasIndexResult(ResponseModel):
    status: Literal["none", "running", "ready", "failed"]
    snapshot_id: str | None
    concepts_created: int
    edges_created: int
    chunks_created: int
    embeddings_created: int
    reused: Reused
    progress: IndexProgress | None = None
    parse_errors: int = 0  # source files that did not parse, over the whole index once it is done
    parse_failures: list[ParseFailure] = Field(default_factory=list)  # the first 20 of them by path


class Concept(ResponseModel):
    id: str
    layer: Layer
    kind: str
    name: str
    path: str
    description: str
    start_line: int | None = None
    end_line: int | None = None
    parent_id: str | None = None
    rank: float = 0.0


class Edge(ResponseModel):
    source_id: str
    target_id: str
    kind: Literal["contains", "imports", "defines", "decided_by"]


class AtlasGraph(ResponseModel):
    concepts: list[Concept]
    edges: list[Edge]
    next_cursor: str | None
    index: AtlasIndexResult


class AtlasSearch(RequestModel):
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class SearchResult(ResponseModel):
    id: str
    name: str
    description: str
    layer: Layer
    path: str
    score: float
    matched_by: list[Literal["text", "embedding"]]


class AtlasSearchResults(ResponseModel):
    results: list[SearchResult]
    embedding_model: str | None = None


class DiagramCreate(RequestModel):
    type: DiagramType
    concept_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class DiagramNode(ResponseModel):
    id: str
    label: str


class DiagramEdge(ResponseModel):
    source: str
    target: str
    label: str | None = None


class Diagram(ResponseModel):
    id: str
    type: DiagramType
    title: str
    nodes: list[DiagramNode]
    edges: list[DiagramEdge]
    mermaid: str
    source: dict[str, Any]
    concept_id: str | None = None
    created_at: str


class DiagramResponse(ResponseModel):
    diagram: Diagram


class DiagramList(ResponseModel):
    diagrams: list[Diagram]
    next_cursor: str | None = None


class Evidence(ResponseModel):
    kind: str
    ref: str


class StepSource(ResponseModel):
    kind: Literal["model", "rules"]
    provider: str | None = None
    model: str | None = None
    note: str | None = None


class NextStep(ResponseModel):
    id: str
    title: str
    description: str
    category: str
    priority: Literal["high", "medium", "low"]
    status: StepStatus
    evidence: list[Evidence]
    related_paths: list[str]
    source: StepSource
    feedback: Literal["helpful", "not_helpful"] | None
    created_at: str
    updated_at: str


class NextStepList(ResponseModel):
    next_steps: list[NextStep]


class NextStepsGenerated(ResponseModel):
    next_steps: list[NextStep]
    generated_count: int
    source: StepSource


class NextStepUpdate(RequestModel):
    status: StepStatus


class NextStepFeedback(RequestModel):
    helpful: bool


class DecisionLink(ResponseModel):
    concept_id: str
    name: str
    layer: Layer
    path: str


class Decision(ResponseModel):
    id: str
    title: str
    context: str
    decision: str
    consequences: str
    status: str
    source: dict[str, Any]
    created_at: str
    links: list[DecisionLink] | None = None


class DecisionList(ResponseModel):
    decisions: list[Decision]


class DecisionsExtracted(ResponseModel):
    decisions: list[Decision]
    extracted_count: int
    messages_read: int
    source: StepSource


class DriftAnalysis(ResponseModel):
    source_changes_summary: str
    risk_level: Literal["none", "low", "medium", "high"]
    can_auto_sync: bool
    recommendation: str
    conflicts_predicted: list[dict[str, Any]]
    files_affected: int
    provider: str
    model: str


class DriftAnalysisResponse(ResponseModel):
    analysis: DriftAnalysis
