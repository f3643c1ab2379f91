-- Blobs held by a working tree that no manifest names yet: the edits of a conversation (or of an
-- action-item run, held by the object `run:<id>`) live in that object's storage, out of GC's sight,
-- until a snapshot builds manifests for them. Each row is a GC root while its holder exists.
CREATE TABLE blob_holds (
  user_id     TEXT NOT NULL,
  holder      TEXT NOT NULL,     -- a conversation id, or `run:<action item run id>`
  hash        TEXT NOT NULL,
  created_at  TEXT NOT NULL,
  PRIMARY KEY (user_id, holder, hash)
);

-- Which conversations a token has opened live streams (WebSocket, SSE) on, so that revoking the
-- token can close them. Gone with the token (purged a week after its expiry or revocation).
CREATE TABLE token_streams (
  token_id         TEXT NOT NULL REFERENCES auth_tokens(id) ON DELETE CASCADE,
  conversation_id  TEXT NOT NULL,
  opened_at        TEXT NOT NULL,
  PRIMARY KEY (token_id, conversation_id)
);
