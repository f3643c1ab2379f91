-- Sync runs: one row per executed sync preview, so a preview executes at most once (preview_id is
-- unique), and undo knows what to go back to; one sync_undos row per undone run.
--
-- Both rows are written in the same D1 batch that moves the workspace by compare-and-set, right
-- after that UPDATE, with a NOT NULL column bound through `CASE WHEN changes() = 1 THEN ? END`: a
-- lost compare-and-set makes the insert fail, and with it the whole batch (nothing visible changes).
CREATE TABLE sync_runs (
  id                    TEXT PRIMARY KEY,
  workspace_id          TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  preview_id            TEXT NOT NULL UNIQUE,
  pre_sync_snapshot_id  TEXT NOT NULL,
  merge_snapshot_id     TEXT NOT NULL,
  main_snapshot_id      TEXT,
  manifest_hash         TEXT NOT NULL,   -- the merged tree the workspace moved to
  created_at            TEXT NOT NULL
);
CREATE INDEX sync_runs_workspace ON sync_runs(workspace_id, created_at DESC);

CREATE TABLE sync_undos (
  id                        TEXT PRIMARY KEY,
  sync_run_id               TEXT NOT NULL UNIQUE REFERENCES sync_runs(id) ON DELETE CASCADE,
  before_undo_snapshot_id   TEXT,          -- set when a forced undo recorded where the workspace had moved
  created_at                TEXT NOT NULL
);
