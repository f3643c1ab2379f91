-- Fastest: foundation schema. D1 (SQLite) dialect; applied by wrangler on Cloudflare and by the local
-- runtime itself, both recording it in d1_migrations. Timestamps are ISO-8601 UTC strings with
-- milliseconds and a trailing Z, so they sort as text. Ids are type-prefixed, time-sortable strings.

CREATE TABLE users (
  id          TEXT PRIMARY KEY,
  email       TEXT NOT NULL UNIQUE COLLATE NOCASE,
  name        TEXT,
  picture     TEXT,
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);

-- Bearer tokens. Only the SHA-256 of the token is stored; the token itself is shown once.
CREATE TABLE auth_tokens (
  id                TEXT PRIMARY KEY,
  user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  token_hash        TEXT NOT NULL UNIQUE,
  label             TEXT NOT NULL DEFAULT '',
  abilities         TEXT NOT NULL,           -- JSON array of ability strings
  created_at        TEXT NOT NULL,
  authenticated_at  TEXT NOT NULL,           -- last sign-in/re-confirmation: the fresh-session clock
  expires_at        TEXT NOT NULL,
  last_used_at      TEXT,
  revoked_at        TEXT
);
CREATE INDEX auth_tokens_user ON auth_tokens(user_id, created_at);

CREATE TABLE projects (
  id                 TEXT PRIMARY KEY,
  user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name               TEXT NOT NULL,
  intent             TEXT,
  brief              TEXT,
  main_workspace_id  TEXT,
  last_snapshot_id   TEXT,
  created_at         TEXT NOT NULL,
  updated_at         TEXT NOT NULL,
  last_activity_at   TEXT NOT NULL,
  UNIQUE (user_id, name)
);
-- The list order (updated_at desc, id desc) is also the keyset the cursor walks.
CREATE INDEX projects_user_updated ON projects(user_id, updated_at DESC, id DESC);

CREATE TABLE workspaces (
  id                     TEXT PRIMARY KEY,
  project_id             TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name                   TEXT NOT NULL,
  machine_id             TEXT,
  local_path             TEXT,
  base_snapshot_id       TEXT,
  current_snapshot_id    TEXT,
  current_manifest_hash  TEXT,
  version                INTEGER NOT NULL DEFAULT 0,   -- compare-and-set for sync
  last_seen_at           TEXT,
  created_at             TEXT NOT NULL,
  updated_at             TEXT NOT NULL
);
CREATE INDEX workspaces_project ON workspaces(project_id, created_at);

CREATE TABLE snapshots (
  id             TEXT PRIMARY KEY,
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  workspace_id   TEXT REFERENCES workspaces(id) ON DELETE SET NULL,
  manifest_hash  TEXT NOT NULL,
  source         TEXT NOT NULL DEFAULT 'cli',
  summary        TEXT,
  created_at     TEXT NOT NULL
);
CREATE INDEX snapshots_project ON snapshots(project_id, created_at DESC, id DESC);
CREATE INDEX snapshots_workspace ON snapshots(workspace_id, created_at DESC, id DESC);

-- The snapshot DAG: a parent always exists before its child, so cycles cannot be built.
CREATE TABLE snapshot_parents (
  snapshot_id  TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  parent_id    TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  position     INTEGER NOT NULL,
  PRIMARY KEY (snapshot_id, position)
);
CREATE INDEX snapshot_parents_parent ON snapshot_parents(parent_id);

-- Activity and audit: every write to a project appends one row.
CREATE TABLE project_events (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: the list order and its cursor
  id          TEXT NOT NULL UNIQUE,
  project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  actor       TEXT NOT NULL,                -- user id that made the change
  type        TEXT NOT NULL,
  summary     TEXT NOT NULL,
  data        TEXT NOT NULL DEFAULT '{}',   -- JSON object
  created_at  TEXT NOT NULL
);
CREATE INDEX project_events_project ON project_events(project_id, seq DESC);

-- Project environment variables. Secret values are AES-GCM ciphertext (value_ciphertext), never plain.
CREATE TABLE env_vars (
  id                TEXT PRIMARY KEY,
  project_id        TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  key               TEXT NOT NULL,
  value             TEXT,
  value_ciphertext  TEXT,
  is_secret         INTEGER NOT NULL DEFAULT 0 CHECK (is_secret IN (0, 1)),
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL,
  UNIQUE (project_id, key),
  CHECK ((is_secret = 1 AND value IS NULL AND value_ciphertext IS NOT NULL)
      OR (is_secret = 0 AND value IS NOT NULL AND value_ciphertext IS NULL))
);

-- Idempotency-Key records: the first response to (user, key) is replayed for 24 hours.
CREATE TABLE idempotency_keys (
  user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  key              TEXT NOT NULL,
  fingerprint      TEXT NOT NULL,          -- SHA-256 of method, path and body
  state            TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
  response_status  INTEGER,
  response_body    TEXT,
  created_at       TEXT NOT NULL,
  expires_at       TEXT NOT NULL,
  PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys(expires_at);
