"""Atlas search: ranked text search (SQLite FTS5, BM25) fused with embedding search when the project
has vectors of the model at hand (reciprocal rank fusion); `matched_by` says which found each result,
and ties go to the concept the import graph ranks higher (PageRank)."""

from __future__ import annotations

import json
import re
from typing import Any

from fastest.platform import Platform
from fastest.services import projects
from fastest.services.intelligence import atlas_indexer

RRF_K = 60
CANDIDATES = 40
_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = {"the", "a", "an", "of", "to", "in", "and", "or", "for", "is", "it", "that", "this", "with", "on", "by",
         "how", "what", "where", "which", "does", "do", "i", "we", "be", "are", "from"}


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
    prefix, for a name being typed); `name`: every word in the concept's name; `names`: any of the
    `rare` words (default: the longest few) in the name. None when the query has no word."""
    words = query_words(query)
    if not words:
        return None
    scope = f'scope : "{atlas_indexer.fts_scope(project_id)}"'
    if mode == "names":
        chosen = rare or sorted(words, key=lambda w: (-len(w), words.index(w)))[:4]
        return f'{scope} AND name : ({" OR ".join(f"{chr(34)}{w}{chr(34)}" for w in chosen)})'
    terms = [f'"{w}"' for w in words[:-1]]
    last = words[-1]
    terms.append(f'"{last}"*' if len(last) >= 3 else f'"{last}"')
    if mode == "name":
        return f'{scope} AND name : ({" AND ".join(terms)})'
    return f'{scope} AND {" AND ".join(terms)}'


_COLUMNS = "c.seq, c.id, c.name, c.description, c.layer, c.kind, c.path, c.start_line, c.end_line, c.rank"


async def _ranked(platform: Platform, project_id: str, match: str, limit: int) -> list[dict[str, Any]]:
    return (await platform.db.prepare(
        f"SELECT {_COLUMNS}, f.rank AS score FROM (SELECT rowid, rank FROM atlas_fts WHERE atlas_fts MATCH ? "
        "ORDER BY rank LIMIT ?) f CROSS JOIN atlas_concepts c ON c.seq = f.rowid WHERE c.project_id = ? "
        "ORDER BY f.rank, c.rank DESC"
    ).bind(match, limit, project_id).all()).results


async def _unranked(platform: Platform, project_id: str, match: str, limit: int) -> list[dict[str, Any]]:
    """The first matches FTS5 finds (no BM25: that would score every match), most important first."""
    return (await platform.db.prepare(
        f"SELECT {_COLUMNS}, 0.0 AS score FROM (SELECT rowid FROM atlas_fts WHERE atlas_fts MATCH ? LIMIT ?) f "
        "CROSS JOIN atlas_concepts c ON c.seq = f.rowid WHERE c.project_id = ? ORDER BY c.rank DESC, c.seq LIMIT ?"
    ).bind(match, UNRANKED_CANDIDATES, project_id, limit).all()).results


async def text_hits(platform: Platform, project_id: str, query: str, limit: int) -> list[dict[str, Any]]:
    """Ranked text matches, in bounded work whatever the words:

    1. concepts whose name has every word (BM25; names are short, so these are few);
    2. concepts with every word anywhere: BM25 when the rarest word bounds the matches (fts5vocab
       counts), else the first matches by importance (PageRank) — ranking tens of thousands of
       rows that all hold common words would cost more than it tells;
    3. for longer queries still short of `limit`, names with any of the query's rarer words.
    """
    match = fts_query(project_id, query)
    if match is None:
        return []
    words = query_words(query)
    rows = await _ranked(platform, project_id, fts_query(project_id, query, mode="name") or match, limit)
    seen = {r["id"] for r in rows}

    def add(more: list[dict[str, Any]]) -> None:
        for row in more:
            if row["id"] not in seen and len(rows) < limit:
                seen.add(row["id"])
                rows.append(row)

    if len(rows) < limit:
        counts = {r["term"]: r["doc"] for r in (await platform.db.prepare(
            "SELECT term, doc FROM atlas_fts_terms WHERE term IN (SELECT value FROM json_each(?))"
        ).bind(json.dumps(words)).all()).results}
        # Every match holds each exact word, so the rarest one bounds them (a lone word is also a
        # prefix: its own count, roughly; unknown when only longer words start with it).
        exact = [counts.get(w, 0) for w in words[:-1]]
        bound = min(exact) if exact else (counts.get(words[-1]) or RANK_ALL_ROWS + 1)
        add(await (_ranked if bound <= RANK_ALL_ROWS else _unranked)(platform, project_id, match, limit))
        if len(rows) < limit and len(words) > 1:
            present = sorted((w for w in words if counts.get(w)), key=lambda w: counts[w])
            rare = [w for w in present if counts[w] <= COMMON_ROWS][:4]
            if rare:
                add(await _ranked(platform, project_id, fts_query(project_id, query, mode="names", rare=rare) or match, limit))
    return rows


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
    rows = (await platform.db.prepare(
        # CROSS JOIN: the few ids drive the lookup (else the planner may walk the project's concepts).
        f"SELECT {_COLUMNS} FROM json_each(?) j CROSS JOIN atlas_concepts c ON c.id = j.value WHERE c.project_id = ?"
    ).bind(json.dumps(ordered), project_id).all()).results
    by_id = {r["id"]: r for r in rows}
    return [by_id[c] for c in ordered if c in by_id], stored_model


EXACT_CANDIDATES = 100
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
    for row in await _ranked(platform, project_id, match, EXACT_CANDIDATES):
        name = row["name"].lower()
        short = name.rsplit(".", 1)[-1] if row["layer"] == "code" else name.rsplit("/", 1)[-1]
        tier = 0 if name == wanted else 1 if short == wanted else None
        if tier is not None:
            found.append(((tier, _KIND_FIRST.get(row["kind"], 10), -(row["rank"] or 0), row["seq"]), row))
    return [row for _, row in sorted(found, key=lambda item: item[0])]


async def search(platform: Platform, user_id: str, project_id: str, query: str, limit: int) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    exact = await exact_hits(platform, project_id, query)
    text = await text_hits(platform, project_id, query, CANDIDATES)
    semantic, model = await embedding_hits(platform, user_id, project_id, query, limit)
    fused: dict[str, dict[str, Any]] = {}
    for source, rows in (("text", text), ("embedding", semantic)):
        for position, row in enumerate(rows):
            entry = fused.setdefault(row["id"], {"row": row, "score": 0.0, "matched_by": []})
            entry["score"] += 1.0 / (RRF_K + position + 1)
            entry["matched_by"].append(source)
    ordered = sorted(fused.values(), key=lambda e: (-e["score"], -(e["row"]["rank"] or 0), e["row"]["seq"]))
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
