-- Integration webhooks and the storage-stats job.
--
-- webhook_endpoints: a user's endpoints. `events` is a JSON array of event types ("*" = all);
-- `secret_sealed` is the Vault ciphertext of the `whsec_…` signing secret (never stored plain).
-- `failing_since` is when the current run of failed attempts began (NULL while healthy): three days
-- of it disables the endpoint. `paused_until` holds back every send to the endpoint (its
-- failure_backoff_seconds after a failure, or a Retry-After).
CREATE TABLE webhook_endpoints (
  id                       TEXT PRIMARY KEY,
  user_id                  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  project_id               TEXT REFERENCES projects(id) ON DELETE CASCADE,   -- NULL: every project
  url                      TEXT NOT NULL,
  events                   TEXT NOT NULL,
  secret_sealed            TEXT NOT NULL,
  enabled                  INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  rate_limit_per_minute    INTEGER,
  failure_backoff_seconds  INTEGER,
  disabled_reason          TEXT,
  failing_since            TEXT,
  paused_until             TEXT,
  created_at               TEXT NOT NULL,
  updated_at               TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints(user_id, created_at, id);

-- One message per (event, endpoint): its id is the `webhook-id` header, the same on every attempt,
-- and its payload the exact bytes sent every time. status: pending (due at next_attempt_at),
-- succeeded, failed (gave up, or its endpoint was disabled). A sender claims a due message by
-- setting lease_token/lease_until in one UPDATE, so two concurrent senders never send it twice.
CREATE TABLE webhook_messages (
  id               TEXT PRIMARY KEY,
  endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  event_id         TEXT NOT NULL,
  event_type       TEXT NOT NULL,
  payload          TEXT NOT NULL,
  status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  TEXT,
  lease_token      TEXT,
  lease_until      TEXT,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL
);
CREATE INDEX webhook_messages_due ON webhook_messages(status, next_attempt_at);
CREATE INDEX webhook_messages_event ON webhook_messages(event_id);
CREATE INDEX webhook_messages_endpoint ON webhook_messages(endpoint_id, status);

-- The deliveries log: one row per attempt.
CREATE TABLE webhook_deliveries (
  seq               INTEGER PRIMARY KEY AUTOINCREMENT,   -- insertion order: the list order and its cursor
  id                TEXT NOT NULL UNIQUE,
  message_id        TEXT NOT NULL REFERENCES webhook_messages(id) ON DELETE CASCADE,
  endpoint_id       TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  event_id          TEXT NOT NULL,
  event_type        TEXT NOT NULL,
  attempt           INTEGER NOT NULL,
  trigger           TEXT NOT NULL,        -- event | retry | test | redeliver
  status_code       INTEGER,              -- NULL: no HTTP answer (refused target, timeout, network)
  success           INTEGER NOT NULL CHECK (success IN (0, 1)),
  error             TEXT,
  response_excerpt  TEXT,
  duration_ms       INTEGER NOT NULL,
  next_retry_at     TEXT,
  created_at        TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, seq DESC);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries(created_at);

-- Storage used per user (counts and bytes by kind), recomputed by the `recompute-storage-stats` job
-- (GET /v1/blobs/stats stays live). The plan limit reads its own trigger-kept counter, storage_usage
-- (0009), which the same job re-derives as a self-check.
CREATE TABLE storage_stats (
  user_id          TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  blob_count       INTEGER NOT NULL,
  blob_bytes       INTEGER NOT NULL,
  manifest_count   INTEGER NOT NULL,
  manifest_bytes   INTEGER NOT NULL,
  computed_at      TEXT NOT NULL
);
