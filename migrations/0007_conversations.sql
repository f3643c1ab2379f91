-- Conversations. D1 holds the index — who owns a conversation, which workspace it works
-- on, its title — so lists and lookups work across projects; the messages, the event log, pending
-- questions and the working-tree overlay live in the conversation's Durable Object.

CREATE TABLE conversations (
  seq           INTEGER PRIMARY KEY AUTOINCREMENT,   -- insertion order: the list order and its cursor
  id            TEXT NOT NULL UNIQUE,
  user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  title         TEXT,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);
CREATE INDEX conversations_user ON conversations(user_id, seq);

-- The AI budget guardrail: model calls per user per fixed window. A counter, so D1 (not KV).
CREATE TABLE ai_usage (
  user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  window_start  TEXT NOT NULL,
  used          INTEGER NOT NULL,
  PRIMARY KEY (user_id, window_start)
);
