-- Snapshots and workspaces list in insertion order (rowid), not by timestamp: rows made in the same
-- millisecond (a restore writes a checkpoint and a new head in one batch) must keep their order,
-- and the ids' random tail does not preserve it. These indexes serve `WHERE project_id = ? ORDER BY
-- rowid DESC` (an index entry ends with the rowid, so it is already in that order).
CREATE INDEX snapshots_project_order ON snapshots(project_id);
CREATE INDEX snapshots_workspace_order ON snapshots(workspace_id);
DROP INDEX snapshots_project;
DROP INDEX snapshots_workspace;
