"""Snapshots, workspaces and the three-way merge of a workspace with main.

Modules: `snapshots` (recording and restoring snapshots); `workspaces` (workspaces and their heads);
`merges` (sync prepare / execute / undo); `analysis_queue` (workspaces whose tree moved, queued for
analysis).

Callers use the names re-exported here (`sync.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.sync import snapshots`).
"""

from __future__ import annotations

from fastest.services.sync.merges import (
    PATH_LIST_LIMIT,
    execute,
    prepare,
    undo,
)
