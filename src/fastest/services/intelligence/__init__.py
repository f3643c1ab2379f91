"""Project intelligence: the Atlas knowledge graph and its search, diagrams, decisions, next steps
and drift analysis.

Modules: `atlas` (building and reading the Atlas); `atlas_search` (text and hybrid search over the
Atlas); `diagrams` (Mermaid diagrams); `decisions` (recorded decisions); `next_steps` (suggested
next steps); `drift_analysis` (explaining drift between workspaces).
"""
