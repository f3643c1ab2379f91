-- Content-addressed storage: what each user has stored in R2, verified manifests and their edges,
-- and drift reports. Bodies live in R2 under {user_id}/blobs/{hash} and {user_id}/manifests/{hash};
-- these rows are the index that makes `exists`, stats, closure checks and GC queries, not R2 scans.
--
-- state: 'live', or 'deleting' while GC removes the object (uploads of that hash wait; lookups treat
-- it as missing). touched_at: the last upload, `exists` hit or closure check that relied on it; GC
-- only collects what has been untouched for the grace period.

CREATE TABLE blob_refs (
  user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  hash         TEXT NOT NULL,
  size         INTEGER NOT NULL,
  uploaded_at  TEXT NOT NULL,
  touched_at   TEXT NOT NULL,
  state        TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting')),
  PRIMARY KEY (user_id, hash)
) WITHOUT ROWID;

CREATE TABLE manifests (
  user_id              TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  hash                 TEXT NOT NULL,
  size                 INTEGER NOT NULL,
  uploaded_at          TEXT NOT NULL,
  touched_at           TEXT NOT NULL,
  state                TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting')),
  closure_verified_at  TEXT,            -- every manifest and blob below it existed at this time
  PRIMARY KEY (user_id, hash)
) WITHOUT ROWID;

-- Manifest → child edges, recorded when a manifest is uploaded (it is parsed then anyway), so GC's
-- mark phase and closure checks are recursive queries instead of R2 reads.
CREATE TABLE manifest_edges (
  user_id      TEXT NOT NULL,
  parent_hash  TEXT NOT NULL,
  child_type   TEXT NOT NULL CHECK (child_type IN ('tree', 'blob')),
  child_hash   TEXT NOT NULL,
  PRIMARY KEY (user_id, parent_hash, child_type, child_hash),
  FOREIGN KEY (user_id, parent_hash) REFERENCES manifests(user_id, hash) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_edges_child ON manifest_edges(user_id, child_hash);

CREATE INDEX snapshots_manifest ON snapshots(manifest_hash);
CREATE INDEX workspaces_manifest ON workspaces(current_manifest_hash);

-- Drift reports: posted by the CLI, or recorded by a server-side compare.
CREATE TABLE drift_reports (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  id              TEXT NOT NULL UNIQUE,
  workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  files_added     INTEGER NOT NULL,
  files_modified  INTEGER NOT NULL,
  files_deleted   INTEGER NOT NULL,
  bytes_changed   INTEGER NOT NULL,
  summary         TEXT,
  details         TEXT NOT NULL DEFAULT '{}',   -- JSON: counts by extension, overlap, compared manifests
  source          TEXT NOT NULL DEFAULT 'cli' CHECK (source IN ('cli', 'compare')),
  created_at      TEXT NOT NULL
);
CREATE INDEX drift_reports_workspace ON drift_reports(workspace_id, seq DESC);
