-- Identity: the OAuth device flow (RFC 8628), users' provider API keys, and the security audit log.

-- Device authorizations. Only the SHA-256 of the device code is stored (the CLI holds the code);
-- the user code is short and typed by a person, so it is stored normalised (8 letters, no dash) and
-- guessing is rate-limited. A row is redeemed once: `redeemed_at` is set in the same statement that
-- hands out the token, guarded by `redeemed_at IS NULL`.
CREATE TABLE device_codes (
  id                TEXT PRIMARY KEY,
  device_code_hash  TEXT NOT NULL UNIQUE,
  user_code         TEXT NOT NULL UNIQUE,
  client_name       TEXT NOT NULL DEFAULT '',
  abilities         TEXT NOT NULL,            -- JSON array: what the token will carry
  status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'denied')),
  user_id           TEXT REFERENCES users(id) ON DELETE CASCADE,   -- who approved (or denied)
  interval_seconds  INTEGER NOT NULL,         -- raised by 5 s for good on each slow_down
  last_polled_at    TEXT,
  created_at        TEXT NOT NULL,
  expires_at        TEXT NOT NULL,
  decided_at        TEXT,
  redeemed_at       TEXT,
  token_id          TEXT                      -- the token issued on redemption
);
CREATE INDEX device_codes_expiry ON device_codes(expires_at);

-- LLM provider API keys: one per (user, provider). The value is a vault ciphertext (AES-GCM, AAD =
-- user id + provider); `key_id` names the vault key that sealed it, for rotation. No part of the
-- value is stored in clear: the masked list decrypts to show the last 4 characters.
CREATE TABLE api_keys (
  id                TEXT PRIMARY KEY,
  user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  provider          TEXT NOT NULL,
  key_name          TEXT NOT NULL,            -- the env var it is revealed as (e.g. OPENAI_API_KEY)
  value_ciphertext  TEXT NOT NULL,
  key_id            TEXT NOT NULL,            -- vault key id, for rotation
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL,
  UNIQUE (user_id, provider)
);

-- Security events of a user (sign-ins, tokens, keys, reveals, device decisions): time, request id,
-- IP, never a secret. Listed newest first by insertion order (seq).
CREATE TABLE security_events (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  id          TEXT NOT NULL UNIQUE,
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  type        TEXT NOT NULL,
  summary     TEXT NOT NULL,
  data        TEXT NOT NULL DEFAULT '{}',     -- JSON object, ids and names only
  request_id  TEXT,
  ip          TEXT,
  user_agent  TEXT,
  created_at  TEXT NOT NULL
);
CREATE INDEX security_events_user ON security_events(user_id, seq DESC);
