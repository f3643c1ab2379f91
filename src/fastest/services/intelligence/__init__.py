"""Project intelligence: the Atlas knowledge graph and its search, diagrams, decisions, next steps
and drift analysis.

Modules: `atlas` (starting, stepping and reading an Atlas index); `atlas_indexer` (the walk of a
snapshot's tree and what it writes); `atlas_search` (text and hybrid search over the
Atlas); `diagrams` (Mermaid diagrams); `decisions` (recorded decisions); `next_steps` (suggested
next steps); `drift_analysis` (explaining drift between workspaces).
"""
