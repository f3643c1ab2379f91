-- Project intelligence: the Atlas (a project's knowledge graph: concepts, edges, search,
-- chunks and local vectors), diagrams, next steps and decisions.

-- One index per project: where it stands, and while it runs, the directories still to visit (a
-- large tree is indexed in bounded steps that continue in the background).
CREATE TABLE atlas_indexes (
  project_id     TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
  user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  snapshot_id    TEXT,
  root_hash      TEXT NOT NULL,
  status         TEXT NOT NULL CHECK (status IN ('running', 'ready', 'failed')),
  embed          INTEGER NOT NULL DEFAULT 0,
  embed_model    TEXT,
  state          TEXT,              -- JSON while running: pending directories and counters
  result         TEXT,              -- JSON: the counts of the last run
  error          TEXT,
  lease_until    TEXT,              -- a step holds the index until then (one stepper at a time)
  started_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL,
  completed_at   TEXT
);
CREATE INDEX atlas_indexes_running ON atlas_indexes(status, updated_at);

-- Directories whose subtree is indexed, by manifest hash: an unchanged hash is reused unread.
CREATE TABLE atlas_dirs (
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  path           TEXT NOT NULL,     -- "" for the root
  parent         TEXT,
  manifest_hash  TEXT NOT NULL,
  embed_model    TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (project_id, path)
);
CREATE INDEX atlas_dirs_parent ON atlas_dirs(project_id, parent);

-- Files indexed, by blob hash: what each one holds and imports (candidates resolved at the end).
CREATE TABLE atlas_files (
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  path           TEXT NOT NULL,
  dir            TEXT NOT NULL,
  blob_hash      TEXT NOT NULL,
  language       TEXT,
  parse_error    TEXT,
  lines          INTEGER NOT NULL DEFAULT 0,
  todo_count     INTEGER NOT NULL DEFAULT 0,
  symbols        INTEGER NOT NULL DEFAULT 0,
  is_test        INTEGER NOT NULL DEFAULT 0,
  system_path    TEXT NOT NULL DEFAULT '',
  imports        TEXT NOT NULL DEFAULT '[]',   -- JSON [[spec, [candidates], suffix]]
  resolved       TEXT NOT NULL DEFAULT '[]',   -- JSON [paths of the tree it imports]
  embed_model    TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (project_id, path)
);
CREATE INDEX atlas_files_dir ON atlas_files(project_id, dir);

CREATE TABLE atlas_concepts (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,   -- also the rowid of its atlas_fts row
  id             TEXT NOT NULL UNIQUE,
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  layer          TEXT NOT NULL CHECK (layer IN ('system', 'module', 'code')),
  kind           TEXT NOT NULL,
  name           TEXT NOT NULL,
  path           TEXT NOT NULL,
  start_line     INTEGER,
  end_line       INTEGER,
  description    TEXT NOT NULL DEFAULT '',
  parent_id      TEXT,
  rank           REAL NOT NULL DEFAULT 0,
  data           TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX atlas_concepts_project ON atlas_concepts(project_id, layer, seq);
CREATE INDEX atlas_concepts_path ON atlas_concepts(project_id, path);

-- contains | imports | defines | decided_by (decision → concept). `owner`: the file (or decision)
-- whose indexing wrote the edge, so re-indexing a file replaces exactly its edges.
CREATE TABLE atlas_edges (
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  source_id      TEXT NOT NULL,
  target_id      TEXT NOT NULL,
  kind           TEXT NOT NULL CHECK (kind IN ('contains', 'imports', 'defines', 'decided_by')),
  owner          TEXT NOT NULL,
  PRIMARY KEY (project_id, kind, source_id, target_id)
);
CREATE INDEX atlas_edges_owner ON atlas_edges(project_id, owner);
CREATE INDEX atlas_edges_source ON atlas_edges(project_id, source_id);
CREATE INDEX atlas_edges_target ON atlas_edges(project_id, target_id);

-- Ranked text search (BM25, names weighing ten times the rest). `scope` holds the project id's
-- unique part (one token), ANDed into every query.
CREATE VIRTUAL TABLE atlas_fts USING fts5(name, body, scope, tokenize = 'unicode61');
INSERT INTO atlas_fts (atlas_fts, rank) VALUES ('rank', 'bm25(10.0, 1.0, 0.0)');
-- How many rows hold each term: a query ranks its rarer words, not every row with a common one.
CREATE VIRTUAL TABLE atlas_fts_terms USING fts5vocab('atlas_fts', 'row');

-- Source chunks cut at symbol boundaries (≤ 512 tokens), embedded by `model`.
CREATE TABLE atlas_chunks (
  id             TEXT PRIMARY KEY,
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  path           TEXT NOT NULL,
  concept_id     TEXT NOT NULL,
  start_line     INTEGER NOT NULL,
  end_line       INTEGER NOT NULL,
  model          TEXT NOT NULL
);
CREATE INDEX atlas_chunks_path ON atlas_chunks(project_id, path);

-- The local runtime's VectorIndex (Vectorize on Cloudflare): vectors by namespace and model; only
-- vectors of the same model are ever compared.
CREATE TABLE vectors (
  namespace      TEXT NOT NULL,
  model          TEXT NOT NULL,
  id             TEXT NOT NULL,
  dimensions     INTEGER NOT NULL,
  vector         BLOB NOT NULL,   -- float32, little-endian
  metadata       TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (namespace, model, id)
);

CREATE TABLE atlas_diagrams (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT NOT NULL UNIQUE,
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  type           TEXT NOT NULL CHECK (type IN ('flow', 'dependency', 'component', 'sequence')),
  title          TEXT NOT NULL,
  concept_id     TEXT,
  nodes          TEXT NOT NULL,
  edges          TEXT NOT NULL,
  mermaid        TEXT NOT NULL,
  source         TEXT NOT NULL,   -- JSON {kind: graph | model, provider, model, note}
  snapshot_id    TEXT,
  created_at     TEXT NOT NULL
);
CREATE INDEX atlas_diagrams_project ON atlas_diagrams(project_id, seq);

CREATE TABLE next_steps (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT NOT NULL UNIQUE,
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  title          TEXT NOT NULL,
  description    TEXT NOT NULL,
  category       TEXT NOT NULL,
  priority       TEXT NOT NULL,
  status         TEXT NOT NULL CHECK (status IN ('pending', 'started', 'completed', 'dismissed')),
  evidence       TEXT NOT NULL DEFAULT '[]',
  related_paths  TEXT NOT NULL DEFAULT '[]',
  source         TEXT NOT NULL,
  feedback       TEXT,            -- NULL | helpful | not_helpful
  fingerprint    TEXT NOT NULL,
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);
CREATE INDEX next_steps_project ON next_steps(project_id, status, seq);
CREATE INDEX next_steps_fingerprint ON next_steps(project_id, fingerprint);

CREATE TABLE decisions (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT NOT NULL UNIQUE,
  project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  title          TEXT NOT NULL,
  context        TEXT NOT NULL DEFAULT '',
  decision       TEXT NOT NULL,
  consequences   TEXT NOT NULL DEFAULT '',
  status         TEXT NOT NULL DEFAULT 'accepted',
  conversation_id TEXT,
  message_ids    TEXT NOT NULL DEFAULT '[]',
  source         TEXT NOT NULL DEFAULT '{}',
  fingerprint    TEXT NOT NULL,
  created_at     TEXT NOT NULL,
  UNIQUE (project_id, fingerprint)
);
CREATE INDEX decisions_project ON decisions(project_id, seq);

-- How far each conversation's messages were read for decisions (each message is read once).
CREATE TABLE decision_reads (
  project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  conversation_id TEXT NOT NULL,
  last_seq        INTEGER NOT NULL,
  PRIMARY KEY (project_id, conversation_id)
);
