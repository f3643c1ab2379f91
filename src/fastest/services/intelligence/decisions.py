"""Decisions: ADR-like records extracted from a project's conversations.

Extraction reads each conversation's messages since the last extraction (the conversation's session
object serves them newest first; `decision_reads.last_seq` remembers how far it got, so each message
is read once). With a model, the new messages go to it and its answer must be JSON of the decision
schema (validated; invalid → one retry → the explicit statements). Without one, only explicit
statements are taken: a line "Decision: …", or a sentence "We decided …".

Decisions link to the Atlas concepts they mention (`decided_by` edges, decision → concept): paths of
the tree, and symbol names written as code or as identifiers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fastest.platform import Platform
from fastest.services import projects
from fastest.services.ai import ai_budget, models
from fastest.services.common import new_id, now_iso

log = logging.getLogger(__name__)

PAGE = 100
MAX_MESSAGES = 2000  # per conversation per extraction
MODEL_CHARS = 24_000
_EXPLICIT = [
    re.compile(r"^\s*[*_>#-]*\s*(?:decision|decided|adr)\s*[*_]*\s*:\s*(?P<text>.+)$", re.IGNORECASE | re.MULTILINE),
    re.compile(r"\b(?:we|i|the team)\s+(?:have\s+|had\s+)?decided\s+(?P<text>(?:to|that|on|against)\b[^.!?\n]{3,300})", re.IGNORECASE),
]
_PATH = re.compile(r"(?<![\w/])([\w.-]+(?:/[\w.-]+)+|[\w-]+\.(?:py|ts|tsx|js|jsx|mjs|go|rs|java|md|toml|json|yaml|yml|sql))(?![\w/])")
_CODE = re.compile(r"`([A-Za-z_][\w.]*)(?:\(\))?`")
_CALL = re.compile(r"\b([A-Za-z_][\w.]*)\(\)")
_IDENT = re.compile(r"\b([A-Za-z_]+[a-z][A-Z]\w*|[a-z]+_[a-z_]+|[A-Z][a-z]+[A-Z]\w*)\b")


def explicit_statements(text: str) -> list[str]:
    found: list[str] = []
    for pattern in _EXPLICIT:
        for match in pattern.finditer(text):
            statement = match.group("text").strip().strip("*_ ").rstrip(".")
            if len(statement) >= 3 and statement not in found:
                found.append(statement)
    return found


def _fingerprint(decision: str) -> str:
    words = " ".join(re.findall(r"[a-z0-9]+", decision.lower()))
    return hashlib.sha256(words.encode("utf-8")).hexdigest()[:24]


def _title(statement: str) -> str:
    title = statement[0].upper() + statement[1:] if statement else statement
    return title if len(title) <= 100 else title[:99].rsplit(" ", 1)[0] + "…"


class _ModelDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=3, max_length=140)
    context: str = Field(default="", max_length=2000)
    decision: str = Field(min_length=3, max_length=2000)
    consequences: str = Field(default="", max_length=2000)
    message_ids: list[str] = Field(default_factory=list, max_length=20)


class _ModelAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decisions: list[_ModelDecision] = Field(max_length=20)


async def _new_messages(platform: Platform, user_id: str, conversation_id: str, last_seq: int) -> list[dict[str, Any]]:
    """Messages with seq > last_seq, oldest first, read newest first page by page (through the
    conversation's session object, as `GET /v1/conversations/:id/messages` reads them)."""
    from fastest.services import conversations

    collected: dict[int, dict[str, Any]] = {}
    before: str | None = None
    while len(collected) < MAX_MESSAGES:
        query = {"limit": PAGE, **({"before": before} if before else {})}
        page = await conversations.call(platform, user_id, conversation_id, "GET", "/messages?" + urlencode(query))
        messages = page.get("messages") or []
        fresh = [m for m in messages if int(m.get("seq") or 0) > last_seq]
        for message in fresh:
            collected[int(message["seq"])] = message
        if len(fresh) < len(messages) or not page.get("has_more") or not messages:
            break
        before = messages[0]["created_at"]
    return [collected[k] for k in sorted(collected)]


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


async def _ask_model(platform: Platform, user_id: str, model, messages: list[dict[str, Any]]) -> _ModelAnswer | None:
    transcript = []
    size = 0
    for message in reversed(messages):
        if message.get("role") not in ("user", "assistant") or not _text(message):
            continue
        line = f"[{message['id']}] {message['role']}: {_text(message)[:3000]}"
        size += len(line)
        if size > MODEL_CHARS:
            break
        transcript.append(line)
    if not transcript:
        return _ModelAnswer(decisions=[])
    prompt = (
        "Extract the decisions the people in this conversation made (architecture, libraries, conventions, "
        "scope), as architecture decision records. Only decisions actually made, none invented; an empty list "
        "if there are none. Answer with JSON only: {\"decisions\": [{\"title\": str, \"context\": str, "
        "\"decision\": str, \"consequences\": str, \"message_ids\": [str]}]}\n\n" + "\n".join(reversed(transcript))
    )
    schema = {"name": "decisions", "strict": True, "schema": _ModelAnswer.model_json_schema()}
    conversation: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    for _ in range(2):
        await ai_budget.spend(platform, user_id)
        try:
            answer = await model.complete(conversation, temperature=0, max_tokens=1500,
                                          response_format={"type": "json_schema", "json_schema": schema})
        except Exception as exc:
            log.warning("decisions: the model failed: %s", type(exc).__name__)
            return None
        content = str(answer.get("content") or "").strip()
        if content.startswith("```"):
            content = content.split("\n", 1)[-1].rsplit("```", 1)[0]
        try:
            return _ModelAnswer.model_validate_json(content)
        except ValidationError:
            conversation = conversation + [{"role": "assistant", "content": content[:4000]},
                                           {"role": "user", "content": "Not valid JSON of that shape. Answer with the JSON only."}]
    return None


def decision_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "title": row["title"], "context": row["context"], "decision": row["decision"],
        "consequences": row["consequences"], "status": row["status"],
        "source": {"conversation_id": row["conversation_id"], "message_ids": json.loads(row["message_ids"]),
                   **json.loads(row["source"] or "{}")},
        "created_at": row["created_at"],
    }


async def extract(platform: Platform, user_id: str, project_id: str) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    model = await models.for_user(platform, user_id)
    use_model = models.is_model(model)
    source = {"kind": "model", "provider": model.provider, "model": model.model, "note": None} if use_model else \
        {"kind": "rules", "provider": None, "model": None,
         "note": "No AI model is configured: only explicit statements (\"Decision: …\", \"We decided …\") were extracted."}
    conversations = (await platform.db.prepare(
        "SELECT c.id, COALESCE(r.last_seq, 0) AS last_seq FROM conversations c LEFT JOIN decision_reads r "
        "ON r.project_id = c.project_id AND r.conversation_id = c.id WHERE c.project_id = ? AND c.user_id = ? ORDER BY c.seq"
    ).bind(project_id, user_id).all()).results
    created: list[dict[str, Any]] = []
    read = 0
    now = now_iso(platform)
    for conversation in conversations:
        messages = await _new_messages(platform, user_id, conversation["id"], int(conversation["last_seq"]))
        if not messages:
            continue
        read += len(messages)
        found: list[dict[str, Any]] = []
        answer = await _ask_model(platform, user_id, model, messages) if use_model else None
        if use_model and answer is None:
            source["note"] = "The model's answer was not valid twice; only explicit statements were extracted."
        if answer is not None:
            known = {m["id"] for m in messages}
            for item in answer.decisions:
                found.append({"title": item.title, "context": item.context, "decision": item.decision,
                              "consequences": item.consequences, "message_ids": [i for i in item.message_ids if i in known]})
        else:
            for message in messages:
                if message.get("role") not in ("user", "assistant"):
                    continue  # tool results are file contents, not what was said
                for statement in explicit_statements(_text(message)):
                    found.append({"title": _title(statement), "context": f"Stated by the {message['role']} in the conversation.",
                                  "decision": statement, "consequences": "", "message_ids": [message["id"]]})
        statements = []
        for item in found:
            row = {"id": new_id(platform, "dcs"), "title": item["title"], "context": item["context"],
                   "decision": item["decision"], "consequences": item["consequences"], "status": "accepted",
                   "conversation_id": conversation["id"], "message_ids": json.dumps(item["message_ids"]),
                   "source": json.dumps({"kind": source["kind"], "provider": source["provider"], "model": source["model"]}),
                   "created_at": now}
            exists = await platform.db.prepare("SELECT 1 AS x FROM decisions WHERE project_id = ? AND fingerprint = ?").bind(
                project_id, _fingerprint(item["decision"])).first()
            if exists:
                continue
            statements.append(platform.db.prepare(
                "INSERT OR IGNORE INTO decisions (id, project_id, title, context, decision, consequences, status, conversation_id, "
                "message_ids, source, fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?, ?, ?)"
            ).bind(row["id"], project_id, row["title"], row["context"], row["decision"], row["consequences"],
                   row["conversation_id"], row["message_ids"], row["source"], _fingerprint(item["decision"]), now))
            created.append(decision_view(row))
        statements.append(platform.db.prepare(
            "INSERT INTO decision_reads (project_id, conversation_id, last_seq) VALUES (?, ?, ?) "
            "ON CONFLICT (project_id, conversation_id) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)"
        ).bind(project_id, conversation["id"], max(int(m["seq"]) for m in messages)))
        await platform.db.batch(statements)
    for decision in created:
        await link(platform, project_id, decision["id"], f"{decision['title']}\n{decision['decision']}\n{decision['context']}\n{decision['consequences']}")
    return {"decisions": created, "extracted_count": len(created), "messages_read": read, "source": source}


# --------------------------------------------------------------------------------------------------
# Links to the Atlas
# --------------------------------------------------------------------------------------------------


async def link(platform: Platform, project_id: str, decision_id: str, text: str) -> int:
    """Replace the decision's `decided_by` edges with the concepts its text mentions."""
    paths = {m.group(1).strip("./") for m in _PATH.finditer(text)}
    names = {m.group(1) for pattern in (_CODE, _CALL, _IDENT) for m in pattern.finditer(text)}
    targets: list[str] = []
    if paths:
        rows = (await platform.db.prepare(
            "SELECT c.id, c.path FROM atlas_concepts c WHERE c.project_id = ? AND c.layer IN ('module', 'system') "
            "AND EXISTS (SELECT 1 FROM json_each(?) j WHERE c.path = j.value OR c.path LIKE '%/' || j.value)"
        ).bind(project_id, json.dumps(sorted(paths))).all()).results
        targets += [r["id"] for r in rows]
    if names:
        rows = (await platform.db.prepare(
            "SELECT id FROM atlas_concepts WHERE project_id = ? AND layer = 'code' AND name IN (SELECT value FROM json_each(?)) "
            "ORDER BY rank DESC LIMIT 20"
        ).bind(project_id, json.dumps(sorted(names))).all()).results
        targets += [r["id"] for r in rows]
    targets = list(dict.fromkeys(targets))[:30]
    statements = [platform.db.prepare(
        "DELETE FROM atlas_edges WHERE project_id = ? AND kind = 'decided_by' AND owner = ?"
    ).bind(project_id, decision_id)]
    if targets:
        statements.append(platform.db.prepare(
            "INSERT OR IGNORE INTO atlas_edges (project_id, source_id, target_id, kind, owner) "
            "SELECT ?, ?, value, 'decided_by', ? FROM json_each(?)"
        ).bind(project_id, decision_id, decision_id, json.dumps(targets)))
    await platform.db.batch(statements)
    return len(targets)


async def link_all(platform: Platform, project_id: str) -> int:
    """Re-link the project's decisions after an index (concepts may have come or gone)."""
    rows = (await platform.db.prepare(
        "SELECT id, title, decision, context, consequences FROM decisions WHERE project_id = ? ORDER BY seq DESC LIMIT 500"
    ).bind(project_id).all()).results
    total = 0
    for row in rows:
        total += await link(platform, project_id, row["id"], f"{row['title']}\n{row['decision']}\n{row['context']}\n{row['consequences']}")
    return total


async def list_decisions(platform: Platform, user_id: str, project_id: str, *, include_links: bool) -> list[dict[str, Any]]:
    await projects.get_owned(platform, user_id, project_id)
    rows = (await platform.db.prepare(
        "SELECT * FROM decisions WHERE project_id = ? ORDER BY seq DESC LIMIT 500"
    ).bind(project_id).all()).results
    views = [decision_view(r) for r in rows]
    if include_links and views:
        links = (await platform.db.prepare(
            "SELECT e.source_id, c.id, c.name, c.layer, c.path FROM atlas_edges e JOIN atlas_concepts c ON c.id = e.target_id "
            "WHERE e.project_id = ? AND e.kind = 'decided_by' ORDER BY c.layer, c.path, c.name"
        ).bind(project_id).all()).results
        by_decision: dict[str, list[dict[str, Any]]] = {}
        for row in links:
            by_decision.setdefault(row["source_id"], []).append(
                {"concept_id": row["id"], "name": row["name"], "layer": row["layer"], "path": row["path"]})
        for view in views:
            view["links"] = by_decision.get(view["id"], [])
    return views
