-- Billing with Paddle. A user's plan is derived from their subscriptions: the best plan
-- among those whose status still entitles (active, trialing, past_due); no row means the free plan.
-- Every Paddle event received is recorded once (event_id), in the same batch as its effect.

-- One row per Paddle subscription (sub_…), or per completed one-time transaction (txn_…).
CREATE TABLE billing_subscriptions (
  id                  TEXT PRIMARY KEY,
  user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  plan                TEXT NOT NULL,
  status              TEXT NOT NULL,          -- Paddle's status, or 'expired' (reconciliation, no Paddle)
  price_id            TEXT,
  customer_id         TEXT,
  current_period_end  TEXT,                   -- ISO-8601 UTC; NULL: no period (one-time)
  state_at            TEXT NOT NULL,          -- occurred_at (µs, UTC) of what set this state: never goes back
  created_at          TEXT NOT NULL,
  updated_at          TEXT NOT NULL
);
CREATE INDEX billing_subscriptions_user ON billing_subscriptions(user_id);
CREATE INDEX billing_subscriptions_period ON billing_subscriptions(current_period_end);

-- Checkouts we created (a Paddle transaction each). Anonymous ones carry the buyer's email (never
-- shown by the public status route) and their own Idempotency-Key scope; signed-in ones use
-- idempotency_keys like every other creating route.
CREATE TABLE billing_checkouts (
  id               TEXT PRIMARY KEY,          -- chk_…
  user_id          TEXT REFERENCES users(id) ON DELETE CASCADE,
  email            TEXT,
  plan             TEXT NOT NULL,
  status           TEXT NOT NULL CHECK (status IN ('creating', 'open', 'completed', 'failed')),
  transaction_id   TEXT UNIQUE,
  checkout_url     TEXT,
  subscription_id  TEXT,
  idempotency_key  TEXT UNIQUE,               -- anonymous only: SHA-256 of email + Idempotency-Key
  fingerprint      TEXT,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL
);
CREATE INDEX billing_checkouts_user ON billing_checkouts(user_id);

-- Every Paddle notification received, once per event_id. `claim` is the random token of the delivery
-- that inserted the row: effects in the same batch apply only when the row is this delivery's, so a
-- concurrent duplicate cannot apply twice.
CREATE TABLE paddle_events (
  event_id         TEXT PRIMARY KEY,
  event_type       TEXT NOT NULL,
  occurred_at      TEXT NOT NULL,
  notification_id  TEXT,
  claim            TEXT NOT NULL,
  user_id          TEXT REFERENCES users(id) ON DELETE SET NULL,
  subscription_id  TEXT,
  outcome          TEXT NOT NULL,             -- applied, stale, ignored, unmatched
  received_at      TEXT NOT NULL
);
CREATE INDEX paddle_events_received ON paddle_events(received_at);

-- Live storage bytes per user (blobs + manifests), kept by triggers on every write that changes a
-- live row's existence, state or size, so the plan's storage limit is one row read per upload
-- instead of a sum over all of a user's objects. Touching (touched_at) fires nothing.
CREATE TABLE storage_usage (
  user_id  TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  bytes    INTEGER NOT NULL DEFAULT 0
);
INSERT INTO storage_usage (user_id, bytes)
  SELECT user_id, SUM(size) FROM (
    SELECT user_id, size FROM blob_refs WHERE state = 'live'
    UNION ALL
    SELECT user_id, size FROM manifests WHERE state = 'live'
  ) GROUP BY user_id;

CREATE TRIGGER storage_usage_blob_insert AFTER INSERT ON blob_refs WHEN NEW.state = 'live'
BEGIN
  INSERT INTO storage_usage (user_id, bytes) VALUES (NEW.user_id, 0) ON CONFLICT (user_id) DO NOTHING;
  UPDATE storage_usage SET bytes = bytes + NEW.size WHERE user_id = NEW.user_id;
END;
CREATE TRIGGER storage_usage_blob_update AFTER UPDATE OF state, size ON blob_refs
  WHEN OLD.state = 'live' OR NEW.state = 'live'
BEGIN
  INSERT INTO storage_usage (user_id, bytes) VALUES (NEW.user_id, 0) ON CONFLICT (user_id) DO NOTHING;
  UPDATE storage_usage
    SET bytes = bytes + (CASE WHEN NEW.state = 'live' THEN NEW.size ELSE 0 END)
                      - (CASE WHEN OLD.state = 'live' THEN OLD.size ELSE 0 END)
    WHERE user_id = NEW.user_id;
END;
CREATE TRIGGER storage_usage_blob_delete AFTER DELETE ON blob_refs WHEN OLD.state = 'live'
BEGIN
  UPDATE storage_usage SET bytes = bytes - OLD.size WHERE user_id = OLD.user_id;
END;

CREATE TRIGGER storage_usage_manifest_insert AFTER INSERT ON manifests WHEN NEW.state = 'live'
BEGIN
  INSERT INTO storage_usage (user_id, bytes) VALUES (NEW.user_id, 0) ON CONFLICT (user_id) DO NOTHING;
  UPDATE storage_usage SET bytes = bytes + NEW.size WHERE user_id = NEW.user_id;
END;
CREATE TRIGGER storage_usage_manifest_update AFTER UPDATE OF state, size ON manifests
  WHEN OLD.state = 'live' OR NEW.state = 'live'
BEGIN
  INSERT INTO storage_usage (user_id, bytes) VALUES (NEW.user_id, 0) ON CONFLICT (user_id) DO NOTHING;
  UPDATE storage_usage
    SET bytes = bytes + (CASE WHEN NEW.state = 'live' THEN NEW.size ELSE 0 END)
                      - (CASE WHEN OLD.state = 'live' THEN OLD.size ELSE 0 END)
    WHERE user_id = NEW.user_id;
END;
CREATE TRIGGER storage_usage_manifest_delete AFTER DELETE ON manifests WHEN OLD.state = 'live'
BEGIN
  UPDATE storage_usage SET bytes = bytes - OLD.size WHERE user_id = OLD.user_id;
END;
