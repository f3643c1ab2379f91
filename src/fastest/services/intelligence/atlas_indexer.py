"""Indexing one snapshot's tree into the Atlas: the walk and what it writes.

The `Indexer` walks the snapshot's Merkle tree from the root. A directory whose manifest hash was
indexed before is reused without being read (nor anything under it); inside a changed directory, a
file whose blob hash is unchanged is not read again. Each changed file is parsed
(`domain.atlas.extract`) into a module concept, its code concepts and their edges, replaced in a few
statements per directory. When the tree is done (`finish`), imports are resolved against the tree's
files, parse failures counted over the whole index, and modules ranked by PageRank.

Also the Atlas's identifiers (`concept_id`, `chunk_id`), how names become words for the text index,
and the user's embedding model, which starting an index and searching share.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from typing import Any, Iterable, Sequence

from fastest.domain import atlas as extraction
from fastest.domain.atlas.chunks import chunk_file
from fastest.domain.atlas.graph import PathIndex, pagerank
from fastest.domain.atlas.javascript_resolution import RESOLUTION_FILES, Resolver
from fastest.domain.secrets import mask_secrets
from fastest.platform import Platform
from fastest.ports import EmbeddingModel, Statement
from fastest.services import storage

JSON_ROWS = 300  # rows per json_each statement (well under D1's 2 MB value limit)
EMBED_BATCH = 64
DESCRIPTION_MAX = 300
DOC_EXTENSIONS = (".md", ".mdx", ".rst", ".txt")
COMPACT_AFTER_FILES = 500
PARSE_FAILURES_LISTED = 20


def concept_id(project_id: str, layer: str, path: str, name: str = "") -> str:
    digest = hashlib.sha256(f"{project_id}\0{layer}\0{path}\0{name}".encode("utf-8")).hexdigest()
    return f"con_{digest[:24]}"


def chunk_id(project_id: str, path: str, index: int) -> str:
    return "chk_" + hashlib.sha256(f"{project_id}\0{path}\0{index}".encode("utf-8")).hexdigest()[:24]


_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def split_words(text: str) -> str:
    """`parseConfig` / `parse_config` / `HTTPServer` → "parse config" / "HTTP Server": identifiers as
    words for the text index."""
    return " ".join(_WORDS.findall(text))


def fts_scope(project_id: str) -> str:
    """The project's token in `atlas_fts.scope`: its id's unique part (`prj_01J…` → `01J…`)."""
    return project_id.split("_", 1)[-1]


def _range(prefix: str) -> tuple[str, str]:
    """Paths under directory `prefix`: [prefix/, prefix0) ('0' follows '/')."""
    return prefix + "/", prefix + "0"


async def embedder_for_user(platform: Platform, user_id: str) -> EmbeddingModel | None:
    if platform.embedder_factory is None or platform.vectors is None:
        return None
    from fastest.services.ai import models
    from fastest.services.identity import api_keys

    provider = platform.settings.ai_provider.strip().lower()
    key = await api_keys.provider_key(platform, user_id, provider) if provider in models.KEYED_PROVIDERS else None
    return platform.embedder_factory(key)


def embedder_model_id(embedder: EmbeddingModel | None) -> str:
    return f"{embedder.provider}:{embedder.model}" if embedder is not None else ""


class Indexer:
    """One step of a running index: `run` walks up to a budget of files, `finish` completes it."""

    def __init__(self, platform: Platform, row: dict[str, Any], state: dict[str, Any]) -> None:
        self.platform = platform
        self.db = platform.db
        self.project_id: str = row["project_id"]
        self.user_id: str = row["user_id"]
        self.embed_model: str = row["embed_model"] or ""
        self.state = state
        self.counts: dict[str, int] = state["counts"]
        self.load = storage.manifest_loader(platform, self.user_id)
        self.embedder_for_user: EmbeddingModel | None = None

    # --- walking -----------------------------------------------------------------------------

    async def run(self, file_budget: int) -> bool:
        stack: list[list[str]] = self.state["stack"]
        read_before = self.counts["files_read"]
        if stack and stack[0][0] == "" and not self.state["visited"] and len(stack) == 1:
            prior = await self.db.prepare(
                "SELECT manifest_hash, embed_model FROM atlas_dirs WHERE project_id = ? AND path = ''"
            ).bind(self.project_id).first()
            if prior and prior["manifest_hash"] == stack[0][1] and (not self.embed_model or prior["embed_model"] == self.embed_model):
                stack.pop()
                await self._reuse("")
                return True
        while stack and self.counts["files_read"] - read_before < file_budget:
            path, manifest_hash, system = stack.pop()
            await self._directory(path, manifest_hash, system, stack)
        return not stack

    async def _reuse(self, path: str) -> None:
        self.counts["directories_reused"] += 1
        if path == "":
            files = await self.db.prepare("SELECT COUNT(*) AS n FROM atlas_files WHERE project_id = ?").bind(self.project_id).first("n")
        else:
            low, high = _range(path)
            files = await self.db.prepare(
                "SELECT COUNT(*) AS n FROM atlas_files WHERE project_id = ? AND path >= ? AND path < ?"
            ).bind(self.project_id, low, high).first("n")
        self.counts["files_reused"] += int(files or 0)
        self.counts["files_seen"] += int(files or 0)

    async def _directory(self, path: str, manifest_hash: str, system: str, stack: list[list[str]]) -> None:
        manifest = await self.load(manifest_hash)
        self.counts["manifests_read"] += 1
        parent = posixpath.dirname(path) if path else None
        self.state["visited"].append([path, manifest_hash, parent])
        children = {r["path"]: r for r in (await self.db.prepare(
            "SELECT path, manifest_hash, embed_model FROM atlas_dirs WHERE project_id = ? AND parent = ?"
        ).bind(self.project_id, path).all()).results}
        rows = (await self.db.prepare(
            "SELECT path, blob_hash, embed_model FROM atlas_files WHERE project_id = ? AND dir = ?"
        ).bind(self.project_id, path).all()).results
        all_old_files = {r["path"] for r in rows}
        old_files = {r["path"]: r["blob_hash"] for r in rows if not self.embed_model or r["embed_model"] == self.embed_model}
        types = {entry.name: entry.type for entry in manifest.entries}
        names = set(types)
        statements: list[Statement] = []
        is_system = path == "" or any(name in extraction.SYSTEM_MARKERS for name in names)
        if is_system:
            system = path
        statements += self._system_statements(path, names, is_system)
        changed: list[tuple[str, bytes | None, str]] = []
        for entry in manifest.entries:
            full = f"{path}/{entry.name}" if path else entry.name
            if entry.type == "tree":
                prior = children.get(full)
                if prior and prior["manifest_hash"] == entry.hash and (not self.embed_model or prior["embed_model"] == self.embed_model):
                    await self._reuse(full)
                else:
                    stack.append([full, entry.hash, system])
                continue
            self.counts["files_seen"] += 1
            if old_files.get(full) == entry.hash:
                self.counts["files_reused"] += 1
                continue
            data: bytes | None = None
            if (entry.size or 0) <= extraction.MAX_SOURCE_BYTES:
                data = await storage.read_blob(self.platform, self.user_id, entry.hash, max_bytes=extraction.MAX_SOURCE_BYTES)
                self.counts["files_read"] += 1
            changed.append((full, data, entry.hash))
            if full not in all_old_files:
                self.state["paths_changed"] = True
        # What this directory no longer has.
        gone_files = sorted(p for p in all_old_files if types.get(posixpath.basename(p), "tree") == "tree")
        gone_dirs = sorted(p for p in children if types.get(posixpath.basename(p), "file") != "tree")
        if gone_files or gone_dirs:
            self.state["paths_changed"] = True
            self.counts["files_removed"] += len(gone_files)
            statements += await self._removal_statements(gone_files, gone_dirs)
        statements += await self._file_statements(changed, path, system, replaced=all_old_files)
        for start in range(0, len(statements), 200):
            await self.db.batch(statements[start:start + 200])

    def _system_statements(self, path: str, names: set[str], is_system: bool) -> list[Statement]:
        cid = concept_id(self.project_id, "system", path)
        statements = [
            self.db.prepare("DELETE FROM atlas_fts WHERE rowid IN (SELECT seq FROM atlas_concepts WHERE id = ?)").bind(cid),
            self.db.prepare("DELETE FROM atlas_concepts WHERE id = ?").bind(cid),
        ]
        if not is_system:
            return statements
        markers = sorted(n for n in names if n in extraction.SYSTEM_MARKERS)
        name = path or self.state.get("project_name") or "project"
        description = ("The repository root" if path == "" else "A part of the system") + \
            (f" with its own {', '.join(markers)}" if markers else "")
        self.counts["concepts_created"] += 1
        statements += [
            self.db.prepare(
                "INSERT INTO atlas_concepts (id, project_id, layer, kind, name, path, description, data) "
                "VALUES (?, ?, 'system', ?, ?, ?, ?, ?)"
            ).bind(cid, self.project_id, "package" if markers else "repository", name, path, description,
                   json.dumps({"markers": markers})),
            self.db.prepare(
                "INSERT INTO atlas_fts (rowid, name, body, scope) SELECT seq, ?, ?, ? FROM atlas_concepts WHERE id = ?"
            ).bind(split_words(name) + " " + name, description, fts_scope(self.project_id), cid),
        ]
        return statements

    async def _removal_statements(self, files: list[str], dirs: list[str]) -> list[Statement]:
        db, pid = self.db, self.project_id
        statements: list[Statement] = []
        if files:
            statements += self._delete_files(files)
        for directory in dirs:
            low, high = _range(directory)
            await self._drop_vectors("path >= ? AND path < ?", low, high)
            statements += [
                db.prepare("DELETE FROM atlas_fts WHERE rowid IN (SELECT seq FROM atlas_concepts WHERE project_id = ? "
                           "AND (path = ? OR (path >= ? AND path < ?)))").bind(pid, directory, low, high),
                db.prepare("DELETE FROM atlas_concepts WHERE project_id = ? AND (path = ? OR (path >= ? AND path < ?))").bind(pid, directory, low, high),
                db.prepare("DELETE FROM atlas_edges WHERE project_id = ? AND (owner = ? OR (owner >= ? AND owner < ?))").bind(pid, directory, low, high),
                db.prepare("DELETE FROM atlas_files WHERE project_id = ? AND path >= ? AND path < ?").bind(pid, low, high),
                db.prepare("DELETE FROM atlas_dirs WHERE project_id = ? AND (path = ? OR (path >= ? AND path < ?))").bind(pid, directory, low, high),
                db.prepare("DELETE FROM atlas_chunks WHERE project_id = ? AND path >= ? AND path < ?").bind(pid, low, high),
            ]
            count = await db.prepare("SELECT COUNT(*) AS n FROM atlas_files WHERE project_id = ? AND path >= ? AND path < ?").bind(pid, low, high).first("n")
            self.counts["files_removed"] += int(count or 0)
        return statements

    def _delete_files(self, paths: Sequence[str]) -> list[Statement]:
        db, pid = self.db, self.project_id
        listed = json.dumps(list(paths))
        return [
            db.prepare("DELETE FROM atlas_fts WHERE rowid IN (SELECT seq FROM atlas_concepts WHERE project_id = ? "
                       "AND path IN (SELECT value FROM json_each(?)) AND layer != 'system')").bind(pid, listed),
            db.prepare("DELETE FROM atlas_concepts WHERE project_id = ? AND path IN (SELECT value FROM json_each(?)) "
                       "AND layer != 'system'").bind(pid, listed),
            db.prepare("DELETE FROM atlas_edges WHERE project_id = ? AND owner IN (SELECT value FROM json_each(?))").bind(pid, listed),
            db.prepare("DELETE FROM atlas_files WHERE project_id = ? AND path IN (SELECT value FROM json_each(?))").bind(pid, listed),
            db.prepare("DELETE FROM atlas_chunks WHERE project_id = ? AND path IN (SELECT value FROM json_each(?))").bind(pid, listed),
        ]

    async def _drop_vectors(self, where: str, *params: Any) -> None:
        if self.platform.vectors is None:
            return
        rows = (await self.db.prepare(f"SELECT id, model FROM atlas_chunks WHERE project_id = ? AND {where}").bind(
            self.project_id, *params).all()).results
        by_model: dict[str, list[str]] = {}
        for row in rows:
            by_model.setdefault(row["model"], []).append(row["id"])
        for model, ids in by_model.items():
            await self.platform.vectors.delete(self.project_id, model, ids)

    async def _file_statements(self, changed: list[tuple[str, bytes | None, str]], directory: str, system: str,
                               replaced: set[str]) -> list[Statement]:
        if not changed:
            return []
        pid = self.project_id
        paths = [path for path, _, _ in changed if path in replaced]  # files indexed before: replace them
        statements: list[Statement] = []
        if paths:
            await self._drop_vectors("path IN (SELECT value FROM json_each(?))", json.dumps(paths))
            statements = self._delete_files(paths)
        concepts: list[list[Any]] = []
        fts: list[list[str]] = []
        edges: list[list[str]] = []
        files: list[list[Any]] = []
        chunk_rows: list[list[Any]] = []
        embed_items: list[tuple[str, str, dict[str, Any]]] = []
        system_id = concept_id(pid, "system", system)
        for path, data, blob_hash in changed:
            facts = extraction.extract(path, data) if data is not None else extraction.FileFacts(
                path=path, language=extraction.language_of(path),
                parse_error=f"larger than {extraction.MAX_SOURCE_BYTES // 1024} KB: not parsed" if extraction.language_of(path) else None)
            if facts.parse_error and facts.language:
                self.counts["parse_errors"] += 1  # so far; `finish` counts over the whole index
            module_id = concept_id(pid, "module", path)
            description = mask_secrets(facts.doc) or (
                f"{facts.language.capitalize()} module that did not parse ({facts.parse_error})" if facts.parse_error
                else f"{facts.language.capitalize()} module, {facts.lines} lines, {len(facts.symbols)} symbols" if facts.language
                else f"File, {facts.lines} lines")
            module_data = {"language": facts.language, "parse_error": facts.parse_error, "lines": facts.lines,
                           "external": list(facts.external)[:50], "blob_hash": blob_hash}
            concepts.append([module_id, "module", "file" if facts.language is None else "module", path, path, 1,
                             max(facts.lines, 1), description[:DESCRIPTION_MAX], None, json.dumps(module_data)])
            fts.append([module_id, split_words(path) + " " + posixpath.basename(path), description])
            edges.append([system_id, module_id, "contains", path])
            for symbol in facts.symbols:  # one per qualified name: the extractors merge overloads
                name = symbol.name
                cid = concept_id(pid, "code", path, name)
                parent = concept_id(pid, "code", path, symbol.parent) if symbol.parent else module_id
                # A committed secret (a constant's value, a key in a docstring) is masked before it is
                # stored in the concept or the text index, as anywhere beyond the file itself.
                doc, signature = mask_secrets(symbol.doc), mask_secrets(symbol.signature, code=True)
                text = doc or signature
                details = {"signature": signature, "exported": symbol.exported}
                if symbol.signatures:
                    details["signatures"] = [mask_secrets(each, code=True) for each in symbol.signatures]
                concepts.append([cid, "code", symbol.kind, name, path, symbol.start_line, symbol.end_line,
                                 text[:DESCRIPTION_MAX], parent, json.dumps(details)])
                fts.append([cid, split_words(name) + " " + name,
                            f"{doc} {mask_secrets(symbol.detail)} {split_words(signature)} {path}"])
                edges.append([parent, cid, "defines" if symbol.parent is None else "contains", path])
            # Bare JavaScript/TypeScript specifiers too: a workspace package or tsconfig path may own them.
            scripts = facts.language in ("javascript", "typescript")
            imports = [[i.spec, list(i.candidates), i.suffix] for i in facts.imports if i.candidates or scripts]
            resolution = facts.extra.get("resolution")
            if resolution is not None or path.rsplit("/", 1)[-1] in RESOLUTION_FILES:
                self.state["paths_changed"] = True  # how every import resolves may have changed
            files.append([path, directory, blob_hash, facts.language, facts.parse_error, facts.lines, facts.todo_count,
                          len(facts.symbols), int(extraction.is_test_path(path)), system, json.dumps(imports),
                          json.dumps(resolution) if resolution is not None else None])
            if self.embed_model and data and (facts.language is not None or path.lower().endswith(DOC_EXTENSIONS)):
                text = data.decode("utf-8", errors="replace")
                for index, chunk in enumerate(chunk_file(path, text, facts.symbols)):
                    target = concept_id(pid, "code", path, chunk.symbol) if chunk.symbol else module_id
                    identifier = chunk_id(pid, path, index)
                    chunk_rows.append([identifier, path, target, chunk.start_line, chunk.end_line, self.embed_model])
                    embed_items.append((identifier, mask_secrets(chunk.text), {"concept_id": target, "path": path}))
        self.counts["concepts_created"] += len(concepts)
        self.counts["edges_created"] += len(edges)
        db = self.db
        for part in _parts(concepts):
            statements.append(db.prepare(
                "INSERT INTO atlas_concepts (id, project_id, layer, kind, name, path, start_line, end_line, description, parent_id, data) "
                "SELECT value ->> 0, ?, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, "
                "value ->> 7, value ->> 8, value ->> 9 FROM json_each(?)"
            ).bind(pid, json.dumps(part)))
        for part in _parts(fts):
            statements.append(db.prepare(
                "INSERT INTO atlas_fts (rowid, name, body, scope) SELECT (SELECT seq FROM atlas_concepts WHERE id = j.value ->> 0), "
                "j.value ->> 1, j.value ->> 2, ? FROM json_each(?) j"
            ).bind(fts_scope(pid), json.dumps(part)))
        for part in _parts(edges):
            statements.append(db.prepare(
                "INSERT OR IGNORE INTO atlas_edges (project_id, source_id, target_id, kind, owner) "
                "SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)"
            ).bind(pid, json.dumps(part)))
        for part in _parts(files):
            statements.append(db.prepare(
                "INSERT INTO atlas_files (project_id, path, dir, blob_hash, language, parse_error, lines, todo_count, symbols, "
                "is_test, system_path, imports, resolution, resolved, embed_model) "
                "SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, "
                "value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, '?', ? FROM json_each(?)"
            ).bind(pid, self.embed_model, json.dumps(part)))
        for part in _parts(chunk_rows):
            statements.append(db.prepare(
                "INSERT OR REPLACE INTO atlas_chunks (id, project_id, path, concept_id, start_line, end_line, model) "
                "SELECT value ->> 0, ?, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 FROM json_each(?)"
            ).bind(pid, json.dumps(part)))
        if embed_items:
            await self._embed(embed_items)
        return statements

    async def _embed(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        if self.embedder_for_user is None:
            self.embedder_for_user = await embedder_for_user(self.platform, self.user_id)
        if self.embedder_for_user is None or self.platform.vectors is None:
            return
        for start in range(0, len(items), EMBED_BATCH):
            batch = items[start:start + EMBED_BATCH]
            vectors = await self.embedder_for_user.embed([text for _, text, _ in batch])
            await self.platform.vectors.upsert(self.project_id, self.embed_model,
                                               [(identifier, vector, meta) for (identifier, _, meta), vector in zip(batch, vectors)])
            self.counts["chunks_created"] += len(batch)
            self.counts["embeddings_created"] += len(vectors)

    # --- finishing ---------------------------------------------------------------------------

    async def finish(self) -> None:
        db, pid = self.db, self.project_id
        visited = self.state["visited"]
        for part in _parts([[p, h, parent] for p, h, parent in visited]):
            await db.prepare(
                "INSERT INTO atlas_dirs (project_id, path, parent, manifest_hash, embed_model) "
                "SELECT ?, value ->> 0, value ->> 2, value ->> 1, ? FROM json_each(?) WHERE true "
                "ON CONFLICT (project_id, path) DO UPDATE SET manifest_hash = excluded.manifest_hash, "
                "parent = excluded.parent, embed_model = excluded.embed_model"
            ).bind(pid, self.embed_model, json.dumps(part)).run()
        await self._count_parse_errors()
        edges_changed = await self._resolve_imports()
        if edges_changed:
            await self._rank()
        if self.counts["files_read"] >= COMPACT_AFTER_FILES:
            await self._compact_text_index()
        from fastest.services.intelligence import decisions

        await decisions.link_all(self.platform, pid)

    async def _count_parse_errors(self) -> None:
        """Over the whole index (reused files too, not only those read this time): how many source
        files did not parse, and the first few with why."""
        db, pid = self.db, self.project_id
        self.counts["parse_errors"] = int(await db.prepare(
            "SELECT COUNT(*) AS n FROM atlas_files WHERE project_id = ? AND language IS NOT NULL AND parse_error IS NOT NULL"
        ).bind(pid).first("n") or 0)
        rows = (await db.prepare(
            "SELECT path, parse_error FROM atlas_files WHERE project_id = ? AND language IS NOT NULL "
            "AND parse_error IS NOT NULL ORDER BY path LIMIT ?"
        ).bind(pid, PARSE_FAILURES_LISTED).all()).results
        self.state["parse_failures"] = [{"path": r["path"], "parse_error": r["parse_error"]} for r in rows]

    async def _resolve_imports(self) -> bool:
        db, pid = self.db, self.project_id
        everything = bool(self.state.get("paths_changed"))
        pending = (await db.prepare(
            "SELECT path, imports, resolved FROM atlas_files WHERE project_id = ?" + ("" if everything else " AND resolved = '?'")
        ).bind(pid).all()).results
        if not pending:
            return False
        all_paths = [r["path"] for r in (await db.prepare("SELECT path FROM atlas_files WHERE project_id = ?").bind(pid).all()).results]
        index = PathIndex(all_paths)
        resolver = Resolver({r["path"]: json.loads(r["resolution"]) for r in (await db.prepare(
            "SELECT path, resolution FROM atlas_files WHERE project_id = ? AND resolution IS NOT NULL"
        ).bind(pid).all()).results})
        updates: list[list[Any]] = []
        changed = False
        for row in pending:
            targets: list[str] = []
            for spec, candidates, suffix in json.loads(row["imports"]):
                if not candidates and not spec.startswith("."):
                    candidates = resolver.candidates(row["path"], spec)
                target = index.resolve(candidates, suffix=suffix)
                if target is not None and target != row["path"] and target not in targets:
                    targets.append(target)
            encoded = json.dumps(targets)
            if encoded != row["resolved"]:
                old = [] if row["resolved"] == "?" else json.loads(row["resolved"])
                changed = changed or old != targets
                updates.append([row["path"], encoded])
        statements: list[Statement] = []
        for part in _parts(updates):
            statements.append(db.prepare(
                "DELETE FROM atlas_edges WHERE project_id = ? AND kind = 'imports' AND owner IN "
                "(SELECT value ->> 0 FROM json_each(?))"
            ).bind(pid, json.dumps(part)))
            statements += [db.prepare("UPDATE atlas_files SET resolved = ? WHERE project_id = ? AND path = ?").bind(
                encoded, pid, path) for path, encoded in part]
        edge_rows = [[concept_id(pid, "module", path), concept_id(pid, "module", target), path]
                     for path, encoded in updates for target in json.loads(encoded)]
        self.counts["edges_created"] += len(edge_rows)
        for part in _parts(edge_rows):
            statements.append(db.prepare(
                "INSERT OR IGNORE INTO atlas_edges (project_id, source_id, target_id, kind, owner) "
                "SELECT ?, value ->> 0, value ->> 1, 'imports', value ->> 2 FROM json_each(?)"
            ).bind(pid, json.dumps(part)))
        for start in range(0, len(statements), 200):
            await db.batch(statements[start:start + 200])
        return changed

    async def _compact_text_index(self) -> None:
        """After a big index, merge the FTS5 segments its many inserts and deletes left (queries read
        every segment: merged, they take half the time). Locally a full `optimize`; on D1, where the
        table holds every project, a bounded `merge` (pages of work)."""
        command = ("INSERT INTO atlas_fts (atlas_fts) VALUES ('optimize')" if self.platform.capabilities.whole_table_maintenance
                   else "INSERT INTO atlas_fts (atlas_fts, rank) VALUES ('merge', 4000)")
        await self.db.prepare(command).run()

    async def _rank(self) -> None:
        """PageRank of the modules over the import edges; code concepts share their module's rank."""
        db, pid = self.db, self.project_id
        rows = (await db.prepare("SELECT path, resolved FROM atlas_files WHERE project_id = ?").bind(pid).all()).results
        nodes = [r["path"] for r in rows]
        edges = [(r["path"], target) for r in rows if r["resolved"] not in ("?", "[]") for target in json.loads(r["resolved"])]
        ranks = pagerank(nodes, edges)
        scale = len(nodes) or 1
        old = {r["path"]: r["rank"] for r in (await db.prepare(
            "SELECT path, rank FROM atlas_concepts WHERE project_id = ? AND layer = 'module'"
        ).bind(pid).all()).results}
        statements = []
        for path, rank in ranks.items():
            value = round(rank * scale, 4)  # relative to the average module (1.0)
            if old.get(path) != value:
                statements.append(db.prepare(
                    "UPDATE atlas_concepts SET rank = ? WHERE project_id = ? AND path = ? AND layer != 'system'"
                ).bind(value, pid, path))
        for start in range(0, len(statements), 500):
            await db.batch(statements[start:start + 500])


def _parts(rows: Sequence[Any], size: int = JSON_ROWS) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
