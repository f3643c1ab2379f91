"""Atlas search: ranked text search (SQLite FTS5, BM25) fused with embedding search when the project
has vectors of the model at hand (reciprocal rank fusion); `matched_by` says which found each result,
and ties go to the concept the import graph ranks higher (PageRank).

On top of the fusion, what a person means: a concept named exactly the query comes first; for a
question, a symbol named by one of its words counts as a strong text match; the class that several
matched members share goes above them, and a matched module is followed by its namesake symbol.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from fastest.platform import Platform
from fastest.services import projects
from fastest.services.intelligence import atlas_indexer

RRF_K = 60
CANDIDATES = 40
_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = {"the", "a", "an", "of", "to", "in", "and", "or", "for", "is", "it", "that", "this", "with", "on", "by",
         "how", "what", "where", "which", "does", "do", "i", "we", "be", "are", "from", "its", "their", "some",
         "several", "each", "only", "into", "after", "before", "when", "while", "can", "my", "me", "them"}


def query_words(query: str) -> list[str]:
    """The query's words, lowercased, stop words dropped (kept if nothing else is left), camelCase and
    snake_case split as the index splits them."""
    words: list[str] = []
    for token in _WORD.findall(atlas_indexer.split_words(query)):
        lowered = token.lower()
        if lowered not in _STOP and lowered not in words:
            words.append(lowered)
    if not words:
        words = [t.lower() for t in _WORD.findall(query)]
    return words[:16]


COMMON_ROWS = 2000  # a word in more rows than this is not worth ranking every row that has it
RANK_ALL_ROWS = 3000  # BM25 ranks every match only when the rarest word bounds them to this many
UNRANKED_CANDIDATES = 200


def fts_query(project_id: str, query: str, *, mode: str = "all", rare: list[str] | None = None) -> str | None:
    """An FTS5 query scoped to the project. `all`: every word, in any column (the last word also as a
    prefix, for a name being typed); `name`: every word in the concept's name; `any`: any of the
    `rare` words (default: all), each stemmed and as a prefix, in any column. None when the query
    has no word."""
    words = query_words(query)
    if not words:
        return None
    scope = f'scope : "{atlas_indexer.fts_scope(project_id)}"'
    if mode == "any":
        chosen = rare or words
        return f'{scope} AND ({" OR ".join(chr(34) + _stem(w) + chr(34) + ("*" if len(_stem(w)) >= 3 else "") for w in chosen)})'
    terms = [f'"{w}"' for w in words[:-1]]
    last = words[-1]
    terms.append(f'"{last}"*' if len(last) >= 3 else f'"{last}"')
    if mode == "name":
        return f'{scope} AND name : ({" AND ".join(terms)})'
    return f'{scope} AND {" AND ".join(terms)}'


_COLUMNS = "c.seq, c.id, c.name, c.description, c.layer, c.kind, c.path, c.start_line, c.end_line, c.rank, c.parent_id"


# Ranking a question's words one by one: a name with one of them must not outweigh a description
# with several (the table's default weighs names ten times).
QUESTION_RANK = "bm25(atlas_fts, 3.0, 1.0, 0.0)"


async def _ranked(platform: Platform, project_id: str, match: str, limit: int, rank: str = "rank") -> list[dict[str, Any]]:
    return (await platform.db.prepare(
        f"SELECT {_COLUMNS}, f.score AS score FROM (SELECT rowid, {rank} AS score FROM atlas_fts WHERE atlas_fts MATCH ? "
        "ORDER BY score LIMIT ?) f CROSS JOIN atlas_concepts c ON c.seq = f.rowid WHERE c.project_id = ? "
        "ORDER BY f.score, c.rank DESC"
    ).bind(match, limit, project_id).all()).results


async def _unranked(platform: Platform, project_id: str, match: str, limit: int) -> list[dict[str, Any]]:
    """The first matches FTS5 finds (no BM25: that would score every match), most important first."""
    return (await platform.db.prepare(
        f"SELECT {_COLUMNS}, 0.0 AS score FROM (SELECT rowid FROM atlas_fts WHERE atlas_fts MATCH ? LIMIT ?) f "
        "CROSS JOIN atlas_concepts c ON c.seq = f.rowid WHERE c.project_id = ? ORDER BY c.rank DESC, c.seq LIMIT ?"
    ).bind(match, UNRANKED_CANDIDATES, project_id, limit).all()).results


async def text_hits(platform: Platform, project_id: str, query: str, limit: int) -> list[dict[str, Any]]:
    """Ranked text matches, in bounded work whatever the words, each with the `step` that found it:

    1. concepts whose name has every word (BM25; names are short, so these are few);
    2. concepts with every word anywhere: BM25 when the rarest word bounds the matches (fts5vocab
       counts), else the first matches by importance (PageRank) — ranking tens of thousands of
       rows that all hold common words would cost more than it tells;
    3. for longer queries still short of `limit`, concepts with any of the query's rarer words
       (stemmed), ranked by BM25: most of the words, in names first, wins.
    """
    match = fts_query(project_id, query)
    if match is None:
        return []
    words = query_words(query)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(more: list[dict[str, Any]], step: int) -> None:
        for row in more:
            if row["id"] not in seen and len(rows) < limit:
                seen.add(row["id"])
                rows.append({**row, "step": step})

    add(await _ranked(platform, project_id, fts_query(project_id, query, mode="name") or match, limit), 1)

    if len(rows) < limit:
        counts = {r["term"]: r["doc"] for r in (await platform.db.prepare(
            "SELECT term, doc FROM atlas_fts_terms WHERE term IN (SELECT value FROM json_each(?))"
        ).bind(json.dumps(words)).all()).results}
        # Every match holds each exact word, so the rarest one bounds them (a lone word is also a
        # prefix: its own count, roughly; unknown when only longer words start with it).
        exact = [counts.get(w, 0) for w in words[:-1]]
        bound = min(exact) if exact else (counts.get(words[-1]) or RANK_ALL_ROWS + 1)
        add(await (_ranked if bound <= RANK_ALL_ROWS else _unranked)(platform, project_id, match, limit), 2)
        if len(rows) < limit and len(words) > 1:
            # A question rarely has every word in one concept: rank those with most of its rarer
            # words, in any form (`templates` finds `template`), by BM25.
            rare = [w for w in words if counts.get(w, 0) <= COMMON_ROWS]
            if rare:
                add(await _ranked(platform, project_id, fts_query(project_id, query, mode="any", rare=rare) or match, limit,
                                  QUESTION_RANK), 3)
    return rows


def _stem(word: str) -> str:
    """A word's stem for a prefix match: plurals and -ing/-ed forms meet their base word."""
    for suffix, keep in (("ies", 4), ("ing", 5), ("ed", 5), ("es", 5), ("s", 4)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep - 1 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


async def embedding_hits(platform: Platform, user_id: str, project_id: str, query: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Concepts whose chunks are nearest the query, with the model of the project's vectors."""
    if platform.vectors is None:
        return [], None
    row = await platform.db.prepare("SELECT embed_model FROM atlas_indexes WHERE project_id = ?").bind(project_id).first()
    stored_model = row["embed_model"] if row else None
    if not stored_model:
        return [], None
    embedder = await atlas_indexer.embedder_for_user(platform, user_id)
    if embedder is None or atlas_indexer.embedder_model_id(embedder) != stored_model:
        return [], None  # vectors of another model are never compared
    if embedder.provider != "local":
        from fastest.errors import AIRateLimited
        from fastest.services.ai import ai_budget

        try:
            await ai_budget.spend(platform, user_id)
        except AIRateLimited:
            return [], None
    vector = (await embedder.embed([query]))[0]
    matches = await platform.vectors.query(project_id, stored_model, vector, top_k=min(20, max(limit, 10)))
    ordered: list[str] = []
    for match in matches:
        concept = match.metadata.get("concept_id")
        if concept and concept not in ordered:
            ordered.append(concept)
    if not ordered:
        return [], stored_model
    by_id = await _concepts(platform, project_id, ordered)
    return [by_id[c] for c in ordered if c in by_id], stored_model


EXACT_CANDIDATES = 300
# For one name, the thing a person means first: a class before its own members of that name.
_KIND_FIRST = {"package": 0, "repository": 0, "class": 1, "interface": 2, "enum": 3, "type": 4, "function": 5,
               "constant": 6, "method": 7, "module": 8, "file": 9}


async def exact_hits(platform: Platform, project_id: str, query: str) -> list[dict[str, Any]]:
    """Concepts named exactly the query (case-insensitive): the qualified name (`Console.print`)
    first, then the last part (`print`); within each, classes before functions before methods."""
    wanted = query.strip().lower()
    words = query_words(query)
    if not wanted or not words:
        return []
    match = f'scope : "{atlas_indexer.fts_scope(project_id)}" AND name : ({" AND ".join(chr(34) + w + chr(34) for w in words)})'
    found = []
    # No BM25: equality is checked here, so the first matches FTS5 finds are enough (a name's words
    # in this many names are the most any project has).
    rows = (await platform.db.prepare(
        f"SELECT {_COLUMNS} FROM (SELECT rowid FROM atlas_fts WHERE atlas_fts MATCH ? LIMIT ?) f "
        "CROSS JOIN atlas_concepts c ON c.seq = f.rowid WHERE c.project_id = ?"
    ).bind(match, EXACT_CANDIDATES, project_id).all()).results
    for row in rows:
        name = row["name"].lower()
        short = name.rsplit(".", 1)[-1] if row["layer"] == "code" else name.rsplit("/", 1)[-1]
        tier = 0 if name == wanted else 1 if short == wanted else None
        if tier is not None:
            found.append(((tier, _KIND_FIRST.get(row["kind"], 10), -(row["rank"] or 0), row["seq"]), row))
    return [row for _, row in sorted(found, key=lambda item: item[0])]


# The small local embedding model finds what words miss, but ranks less sharply than BM25 with names.
SOURCE_WEIGHT = {"text": 1.0, "embedding": 0.5}
STEP_BONUS = {1: 1.0, 2: 0.5}
PRIVATE_WEIGHT = 0.5  # `_helper`, `__init__`: rarely what a question is after
MEMBERS_FOR_CLASS = 2  # this many members of one class among the matches: the class is the answer
MODULES_FOLLOWED = 10  # matched modules (of the best) whose namesake symbol is looked up


async def _concepts(platform: Platform, project_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    # CROSS JOIN: the few ids drive the lookup (else the planner may walk the project's concepts).
    return {r["id"]: r for r in (await platform.db.prepare(
        f"SELECT {_COLUMNS} FROM json_each(?) j CROSS JOIN atlas_concepts c ON c.id = j.value WHERE c.project_id = ?"
    ).bind(json.dumps(ids), project_id).all()).results} if ids else {}


async def _what_matches_point_at(platform: Platform, project_id: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two orderings a person expects of the matches:

    - a class that several matched members share goes just above its first member (moved up if it
      matched lower down): the class is what those matches are about;
    - right after a matched module comes the symbol it is named after (`interval.ts` → `interval`,
      `pretty.py` → `Pretty`), when it has one: the module's reason to exist.
    """
    position_of = {e["row"]["id"]: i for i, e in enumerate(entries)}
    members: dict[str, list[int]] = {}
    for position, entry in enumerate(entries):
        row = entry["row"]
        if row["layer"] == "code" and row["kind"] == "method" and row["parent_id"]:
            members.setdefault(row["parent_id"], []).append(position)
    classes = [parent for parent, positions in members.items() if len(positions) >= MEMBERS_FOR_CLASS
               and position_of.get(parent, len(entries)) > positions[0]
               and not entries[positions[0]]["row"]["name"].rsplit(".", 2)[-2].startswith("_")]  # not a private class
    modules = [e["row"] for e in entries[:MODULES_FOLLOWED] if e["row"]["layer"] == "module"]
    namesakes: dict[str, dict[str, Any]] = {}
    if modules:
        stems = {m["path"]: posixpath.splitext(posixpath.basename(m["path"]))[0].replace("_", "").replace("-", "").lower()
                 for m in modules}
        for row in (await platform.db.prepare(
            f"SELECT {_COLUMNS} FROM json_each(?) j CROSS JOIN atlas_concepts c ON c.project_id = ? AND c.path = j.value "
            "WHERE c.layer = 'code' AND c.parent_id IN (SELECT id FROM atlas_concepts WHERE project_id = ? AND layer = 'module' "
            "AND path = j.value)"
        ).bind(json.dumps(list(stems)), project_id, project_id).all()).results:
            if row["name"].replace("_", "").lower() == stems[row["path"]] and row["path"] not in namesakes:
                namesakes[row["path"]] = row
    if not classes and not namesakes:
        return entries
    found = await _concepts(platform, project_id, [c for c in classes if c not in position_of])
    above: dict[int, dict[str, Any]] = {}  # position of a class's first matched member → the class
    for parent in classes:
        first = members[parent][0]
        matched = entries[position_of[parent]] if parent in position_of else None
        row = matched["row"] if matched else found.get(parent)
        if row is not None:
            above[first] = {"row": row, "score": entries[first]["score"],
                            "matched_by": (matched or entries[first])["matched_by"]}
    out: list[dict[str, Any]] = []
    for position, entry in enumerate(entries):
        if position in above:
            out.append(above[position])
        out.append(entry)
        namesake = namesakes.get(entry["row"]["path"]) if entry["row"]["layer"] == "module" else None
        if namesake is not None:
            out.append({"row": namesake, "score": entry["score"], "matched_by": entry["matched_by"]})
    seen: set[str] = set()  # a concept placed earlier is not listed again where it matched
    unique = []
    for entry in out:
        if entry["row"]["id"] not in seen:
            seen.add(entry["row"]["id"])
            unique.append(entry)
    return unique


def _weight(row: dict[str, Any]) -> float:
    short = row["name"].rsplit(".", 1)[-1] if row["layer"] == "code" else ""
    return PRIVATE_WEIGHT if short.startswith("_") else 1.0


async def named_by_a_word(platform: Platform, project_id: str, query: str) -> list[dict[str, Any]]:
    """For a question, the classes and functions named exactly one of its words ("render markdown in
    the terminal" → `Markdown`): a word that is a symbol's whole name is a strong hint."""
    words = [w for w in query_words(query) if len(w) >= 4]
    if len(query_words(query)) < 2 or not words:
        return []
    # `^`: names that start with the word (few), not every name holding it (maybe hundreds).
    match = f'scope : "{atlas_indexer.fts_scope(project_id)}" AND name : ({" OR ".join("^" + chr(34) + w + chr(34) for w in words)})'
    rows = (await platform.db.prepare(
        f"SELECT {_COLUMNS} FROM (SELECT rowid FROM atlas_fts WHERE atlas_fts MATCH ? LIMIT ?) f "
        "CROSS JOIN atlas_concepts c ON c.seq = f.rowid WHERE c.project_id = ? AND c.layer = 'code' "
        "AND c.kind IN ('class', 'function', 'interface', 'type', 'enum')"
    ).bind(match, EXACT_CANDIDATES, project_id).all()).results
    named = [r for r in rows if r["name"].lower() in words]
    return [{**r, "step": 1} for r in sorted(named, key=lambda r: (_KIND_FIRST.get(r["kind"], 10), -(r["rank"] or 0), r["seq"]))]


async def search(platform: Platform, user_id: str, project_id: str, query: str, limit: int) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    exact = await exact_hits(platform, project_id, query)
    text = await text_hits(platform, project_id, query, CANDIDATES)
    named = await named_by_a_word(platform, project_id, query)
    text = named + [row for row in text if row["id"] not in {r["id"] for r in named}]
    semantic, model = await embedding_hits(platform, user_id, project_id, query, limit)
    fused: dict[str, dict[str, Any]] = {}
    for source, rows in (("text", text), ("embedding", semantic)):
        for position, row in enumerate(rows):
            entry = fused.setdefault(row["id"], {"row": row, "score": 0.0, "matched_by": []})
            entry["score"] += SOURCE_WEIGHT[source] * _weight(row) / (RRF_K + position + 1)
            # Every word of the query in the name, or in one concept at all, is evidence no
            # embedding's nearness outweighs: as if it also came first in another list.
            entry["score"] += STEP_BONUS.get(row.get("step"), 0.0) / (RRF_K + 1)
            entry["matched_by"].append(source)
    ordered = sorted(fused.values(), key=lambda e: (-e["score"], -(e["row"]["rank"] or 0), e["row"]["seq"]))
    ordered = await _what_matches_point_at(platform, project_id, ordered)
    # An exact name outranks every fused score (at most 2 / (RRF_K + 1)), in its own order.
    first = []
    for position, row in enumerate(exact):
        entry = fused.get(row["id"]) or {"row": row, "matched_by": ["text"]}
        first.append({**entry, "score": 1.0 - position / 1000})
    named = {row["id"] for row in exact}
    ordered = (first + [e for e in ordered if e["row"]["id"] not in named])[:limit]
    results = []
    for entry in ordered:
        row = entry["row"]
        results.append({
            "id": row["id"], "name": row["name"], "description": row["description"], "layer": row["layer"],
            "kind": row["kind"], "path": row["path"], "start_line": row["start_line"], "end_line": row["end_line"],
            "score": round(entry["score"], 6), "matched_by": entry["matched_by"],
        })
    return {"results": results, "embedding_model": model}
