-- Action items: analysis findings persisted per workspace tree, dismissals, and runs.
--
-- Findings from code analysis are recomputed when a workspace's tree changes (a push, the
-- `refresh-action-items` job): `action_item_analyses` says which tree a workspace was last analysed
-- at, and its findings are replaced in the same batch. Drift and failed-deploy findings are computed
-- when listed and are not stored. Every finding has a stable `fingerprint` (kind + workspace +
-- subject) and a `magnitude` (how bad: e.g. how many secrets); a dismissal keeps the magnitude it
-- was given at, and the finding shows again only when its magnitude grows past it.
CREATE TABLE action_item_analyses (
  workspace_id   TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  user_id        TEXT NOT NULL,
  manifest_hash  TEXT NOT NULL,
  snapshot_id    TEXT,
  analyzed_at    TEXT NOT NULL
);
CREATE INDEX action_item_analyses_user ON action_item_analyses(user_id);

CREATE TABLE action_items (
  id             TEXT PRIMARY KEY,       -- derived from user + fingerprint: stable across recomputation
  user_id        TEXT NOT NULL,
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  workspace_id   TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  manifest_hash  TEXT NOT NULL,
  snapshot_id    TEXT,
  kind           TEXT NOT NULL,
  fingerprint    TEXT NOT NULL,
  severity       TEXT NOT NULL,
  magnitude      INTEGER NOT NULL,
  title          TEXT NOT NULL,
  description    TEXT NOT NULL,
  data           TEXT NOT NULL,          -- JSON: paths, rules, counts
  created_at     TEXT NOT NULL
);
CREATE INDEX action_items_user ON action_items(user_id);
CREATE INDEX action_items_workspace ON action_items(workspace_id);

CREATE TABLE action_item_dismissals (
  user_id        TEXT NOT NULL,
  item_id        TEXT NOT NULL,
  fingerprint    TEXT NOT NULL,
  magnitude      INTEGER NOT NULL,
  dismissed_at   TEXT NOT NULL,
  PRIMARY KEY (user_id, item_id)
);

-- A run: a headless agent turn fixing one item on a copy of the workspace's files (held by a
-- ConversationSession object named `run:<id>`, which writes the row as it goes).
CREATE TABLE action_item_runs (
  id                  TEXT PRIMARY KEY,
  user_id             TEXT NOT NULL,
  action_item_id      TEXT NOT NULL,
  project_id          TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  workspace_id        TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  item                TEXT NOT NULL,      -- JSON: the finding as it was when the run started
  base_snapshot_id    TEXT,
  base_manifest_hash  TEXT,
  status              TEXT NOT NULL,      -- queued | running | ready | failed | applied
  attempt_count       INTEGER NOT NULL DEFAULT 0,
  max_attempts        INTEGER NOT NULL,
  summary             TEXT,
  report              TEXT,
  patch               TEXT,
  checks              TEXT NOT NULL DEFAULT '[]',
  changes             TEXT,               -- JSON: path -> {hash, size, mode} | {deleted: true}
  result_manifest_hash TEXT,
  error               TEXT,               -- JSON {code, message} or NULL
  applied_snapshot_id TEXT,
  created_at          TEXT NOT NULL,
  updated_at          TEXT NOT NULL
);
CREATE INDEX action_item_runs_item ON action_item_runs(user_id, action_item_id, created_at DESC);

-- Workspaces whose tree moved (a snapshot landed on them: a push, a sync, an applied run): the
-- `refresh-action-items` job and the next listing analyse these first. Written in the snapshot's batch.
CREATE TABLE action_item_queue (
  workspace_id   TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  queued_at      TEXT NOT NULL
);

-- The secret scan of each blob (content-addressed: the same bytes give the same hits), so a tree
-- that changed one file scans one file. `hits`: JSON [[rule, line, sha256 of the value], …].
CREATE TABLE action_item_blob_scans (
  user_id        TEXT NOT NULL,
  blob_hash      TEXT NOT NULL,
  hits           TEXT NOT NULL,
  scanned_at     TEXT NOT NULL,
  PRIMARY KEY (user_id, blob_hash)
);
