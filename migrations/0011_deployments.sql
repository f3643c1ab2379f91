-- Deployments: provider credentials, per-workspace deployment settings, deployments with
-- their logs, provisioned resources, and the server's own signing key for pipeline callbacks.

-- A user's credential for a provider (e.g. their Cloudflare API token). The token is AES-GCM
-- ciphertext sealed to (user, provider); it is never stored or returned in clear.
CREATE TABLE provider_credentials (
  id                TEXT PRIMARY KEY,
  user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  provider          TEXT NOT NULL,
  token_ciphertext  TEXT NOT NULL,
  metadata          TEXT NOT NULL DEFAULT '{}',   -- JSON object: e.g. account_id (not secret)
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL,
  UNIQUE (user_id, provider)
);

CREATE TABLE deployment_settings (
  workspace_id      TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  project_id        TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  auto_deploy       INTEGER NOT NULL DEFAULT 0 CHECK (auto_deploy IN (0, 1)),
  runtime_override  TEXT,
  build_command     TEXT,
  start_command     TEXT,
  output_dir        TEXT,
  provider          TEXT,
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL
);

CREATE TABLE deployments (
  seq                   INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: the list order and its cursor
  id                    TEXT NOT NULL UNIQUE,
  user_id               TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  project_id            TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  workspace_id          TEXT REFERENCES workspaces(id) ON DELETE SET NULL,
  conversation_id       TEXT,
  snapshot_id           TEXT,
  provider              TEXT NOT NULL,
  status                TEXT NOT NULL CHECK (status IN ('queued', 'building', 'deploying', 'ready', 'failed', 'canceled')),
  trigger               TEXT NOT NULL,
  slug                  TEXT NOT NULL UNIQUE,     -- the deployment's own host label (local: <slug>.localhost)
  url                   TEXT,
  error                 TEXT,
  source_manifest_hash  TEXT,                     -- the tree deployed from
  output_manifest_hash  TEXT,                     -- the static output served (a tree of the user's blobs)
  provider_version      TEXT,                     -- e.g. a Worker version id, for rollback
  rollback_of           TEXT,
  callback_seq          INTEGER NOT NULL DEFAULT 0,  -- the next pipeline callback token's number
  created_at            TEXT NOT NULL,
  started_at            TEXT NOT NULL,
  completed_at          TEXT,
  updated_at            TEXT NOT NULL
);
CREATE INDEX deployments_workspace ON deployments(workspace_id, seq DESC);
CREATE INDEX deployments_project ON deployments(project_id, seq DESC);
CREATE INDEX deployments_conversation ON deployments(conversation_id, seq DESC);

-- A deployment's log, line by line: readable while the pipeline runs (`?after=<seq>`).
CREATE TABLE deployment_logs (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  deployment_id  TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
  step           TEXT NOT NULL,                  -- queue | build | upload | deploy | provision
  message        TEXT NOT NULL,
  created_at     TEXT NOT NULL
);
CREATE INDEX deployment_logs_deployment ON deployment_logs(deployment_id, seq);

-- Provisioned infrastructure (D1 databases, KV namespaces, R2 buckets). Connection info is sealed.
CREATE TABLE resources (
  id                    TEXT PRIMARY KEY,
  user_id               TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  project_id            TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  type                  TEXT NOT NULL CHECK (type IN ('d1', 'kv', 'r2')),
  provider              TEXT NOT NULL,
  name                  TEXT NOT NULL,
  binding               TEXT,
  status                TEXT NOT NULL,
  external_id           TEXT,
  connection_ciphertext TEXT,
  created_at            TEXT NOT NULL,
  updated_at            TEXT NOT NULL,
  UNIQUE (project_id, provider, type, name)
);

-- Secrets the server makes for itself (sealed with the vault), e.g. the deploy callback signing key.
CREATE TABLE server_secrets (
  name        TEXT PRIMARY KEY,
  ciphertext  TEXT NOT NULL,
  created_at  TEXT NOT NULL
);
