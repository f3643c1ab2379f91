"""Next steps: what to do next in a project.

Signals are real and gathered the same way with or without a model: stale workspaces and risky drift
(drift reports and snapshot times), the Atlas (modules without tests, files that do not parse,
TODO/FIXME counts, a missing README), failing deploys (when deployments exist: `deployment_signals`
is the hook), the brief, intent and decisions.

- Without a model, rules turn the signals into steps marked `source.kind = "rules"`.
- With a model, the signals and the user's steering go to it; its answer must be JSON of the step
  schema (`response_format` json_schema where the provider has it), validated by pydantic. Invalid
  → one retry → the rules' steps, with a note saying so.

A step repeating a pending or dismissed one (same fingerprint) is not created again. Dismissed and
unhelpful steps steer the next run: the model is told what not to suggest, and the rules lower the
priority of a category the user found unhelpful.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fastest.domain import drift as drift_domain
from fastest.domain import findings
from fastest.domain.ids import parse_iso
from fastest.errors import NotFound
from fastest.platform import Platform
from fastest.ports import AIModel
from fastest.services import projects
from fastest.services.ai import ai_budget, models
from fastest.services.common import new_id, now_iso

log = logging.getLogger(__name__)

PRIORITIES = ("high", "medium", "low")
STALE_SEEN_DAYS = 14
MAX_STEPS = 8


@dataclass(slots=True)
class Candidate:
    title: str
    description: str
    category: str
    priority: str
    fingerprint: str
    evidence: list[dict[str, str]] = field(default_factory=list)
    related_paths: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------------


async def deployment_signals(platform: Platform, project_id: str) -> list[dict[str, Any]]:
    """The project's last finished deployment when it failed (`[{id, status, error}]`), else `[]`."""
    from fastest.services import (
        deployments,  # deployments reach back here through projects
    )

    failed = await deployments.last_failure(platform, project_id)
    return [] if failed is None else [{"id": failed["id"], "status": "failed", "error": failed["error"]}]


async def signals(platform: Platform, project: dict[str, Any]) -> dict[str, Any]:
    db, pid = platform.db, project["id"]
    now = platform.clock.now()
    workspaces = (await db.prepare(
        "SELECT w.id, w.name, w.last_seen_at, w.base_snapshot_id, w.current_snapshot_id, "
        "(SELECT created_at FROM snapshots WHERE id = COALESCE(w.base_snapshot_id, w.current_snapshot_id)) AS base_at, "
        "(SELECT json_object('files_added', d.files_added, 'files_modified', d.files_modified, 'files_deleted', d.files_deleted, "
        "'details', json(d.details)) FROM drift_reports d WHERE d.workspace_id = w.id ORDER BY d.seq DESC LIMIT 1) AS drift "
        "FROM workspaces w WHERE w.project_id = ? ORDER BY w.rowid"
    ).bind(pid).all()).results
    main_head_at = await db.prepare(
        "SELECT s.created_at FROM workspaces w JOIN snapshots s ON s.id = w.current_snapshot_id WHERE w.id = ?"
    ).bind(project["main_workspace_id"]).first("created_at") if project["main_workspace_id"] else None
    listed = []
    for row in workspaces:
        if row["id"] == project["main_workspace_id"]:
            continue
        staleness = drift_domain.staleness(parse_iso(row["base_at"]) if row["base_at"] else None,
                                           parse_iso(main_head_at) if main_head_at else None, now)
        report = json.loads(row["drift"]) if row["drift"] else None
        risk = None
        if report:
            details = report.get("details") or {}
            unchanged = details.get("files_unchanged")
            risk = details.get("risk_level") or drift_domain.assess_risk(
                files_added=report["files_added"], files_modified=report["files_modified"],
                files_deleted=report["files_deleted"],
                old_file_count=int(unchanged) + report["files_modified"] + report["files_deleted"] if unchanged is not None else 0)
        seen = parse_iso(row["last_seen_at"]) if row["last_seen_at"] else None
        listed.append({"id": row["id"], "name": row["name"], "staleness": staleness["level"],
                       "days_behind": staleness["seconds_behind"] // 86400, "risk_level": risk,
                       "idle_days": (now - seen).days if seen else None})
    atlas_ready = await db.prepare("SELECT status FROM atlas_indexes WHERE project_id = ?").bind(pid).first("status")
    files = (await db.prepare(
        "SELECT f.path, f.language, f.parse_error, f.todo_count, f.symbols, f.is_test, f.resolved, f.dir, "
        "COALESCE(c.rank, 0) AS rank FROM atlas_files f LEFT JOIN atlas_concepts c ON c.project_id = f.project_id "
        "AND c.path = f.path AND c.layer = 'module' WHERE f.project_id = ?"
    ).bind(pid).all()).results if atlas_ready else []
    decisions = (await db.prepare("SELECT title FROM decisions WHERE project_id = ? ORDER BY seq DESC LIMIT 20").bind(pid).all()).results
    return {
        "workspaces": listed,
        "atlas": atlas_ready,
        "files": files,
        "deployments": await deployment_signals(platform, pid),
        "decisions": [d["title"] for d in decisions],
    }


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------


def untested_modules(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The modules no test file names (`domain.findings.untested_module_paths`: the same rule, and so
    the same count, as the action items), most important (PageRank) first."""
    untested = set(findings.untested_module_paths(f["path"] for f in files))
    return sorted((f for f in files if f["path"] in untested), key=lambda f: (-f["rank"], f["path"]))


def rules(project: dict[str, Any], facts: dict[str, Any], steering: dict[str, int]) -> list[Candidate]:
    found: list[Candidate] = []
    for workspace in facts["workspaces"]:
        if workspace["staleness"] in ("stale", "very_stale"):
            found.append(Candidate(
                title=f"Sync workspace “{workspace['name']}” with main",
                description=(f"It is {workspace['days_behind']} day(s) behind main's head; the longer it waits, the more a "
                             "sync has to merge. Run `fastest sync` in its folder."),
                category="sync", priority="high" if workspace["staleness"] == "very_stale" else "medium",
                fingerprint=f"stale:{workspace['id']}", evidence=[{"kind": "workspace", "ref": workspace["id"]}]))
        if workspace["risk_level"] in ("medium", "high"):
            found.append(Candidate(
                title=f"Review the drift of workspace “{workspace['name']}”",
                description=(f"Its latest drift report rates the risk {workspace['risk_level']}: many files differ from "
                             "main. Review and sync it (or split the work) before it grows."),
                category="drift", priority="high" if workspace["risk_level"] == "high" else "medium",
                fingerprint=f"drift:{workspace['id']}", evidence=[{"kind": "drift_report", "ref": workspace["id"]}]))
    for deployment in facts["deployments"]:
        found.append(Candidate(
            title="Fix the failing deployment",
            description=f"The latest deployment failed: {str(deployment.get('error') or 'see its logs')[:200]}.",
            category="deploy", priority="high", fingerprint=f"deploy:{deployment['id']}",
            evidence=[{"kind": "deployment", "ref": deployment["id"]}]))
    if not facts["atlas"]:
        found.append(Candidate(
            title="Index the project's Atlas",
            description="Without an index the project's structure, tests and notes cannot be looked at: run `fastest atlas index`.",
            category="setup", priority="medium", fingerprint="atlas:index", evidence=[{"kind": "atlas", "ref": "not indexed"}]))
        return _steered(found, steering)
    files = facts["files"]
    if files and not any(f["dir"] == "" and f["path"].lower().startswith("readme") for f in files):
        found.append(Candidate(
            title="Add a README", description="The repository has no README at its root: say what the project does and how to run it.",
            category="docs", priority="medium", fingerprint="readme", evidence=[{"kind": "atlas", "ref": "no README at the root"}]))
    broken = sorted((f for f in files if f["parse_error"] and f["language"]), key=lambda f: (-f["rank"], f["path"]))
    if broken:
        found.append(Candidate(
            title=f"Fix {len(broken)} file(s) that do not parse",
            description="These files have syntax errors, so nothing in them can be indexed or run: "
                        + "; ".join(f"{f['path']} ({f['parse_error']})" for f in broken[:3]),
            category="quality", priority="high", fingerprint="parse:" + _digest(f["path"] for f in broken),
            evidence=[{"kind": "atlas", "ref": f["path"]} for f in broken[:5]], related_paths=[f["path"] for f in broken[:10]]))
    untested = untested_modules(files)
    if untested:
        top = untested[:5]
        found.append(Candidate(
            title=f"Add tests for {len(untested)} untested module(s), starting with {top[0]['path']}",
            description="No test imports these modules or is named after them; the most depended-on come first: "
                        + ", ".join(f["path"] for f in top) + ".",
            category="testing", priority="high" if len(untested) > 3 else "medium",
            fingerprint="untested:" + _digest(f["path"] for f in top),
            evidence=[{"kind": "atlas", "ref": f["path"]} for f in top], related_paths=[f["path"] for f in top]))
    todos = sorted((f for f in files if f["todo_count"]), key=lambda f: (-f["todo_count"], f["path"]))
    total = sum(f["todo_count"] for f in todos)
    if total:
        found.append(Candidate(
            title=f"Resolve {total} TODO/FIXME note(s)",
            description="Most are in " + ", ".join(f"{f['path']} ({f['todo_count']})" for f in todos[:3]) + ".",
            category="maintenance", priority="medium" if total >= 20 else "low",
            fingerprint=f"todo:{total}:" + _digest(f["path"] for f in todos[:5]),
            evidence=[{"kind": "atlas", "ref": f"{f['path']}: {f['todo_count']}"} for f in todos[:5]],
            related_paths=[f["path"] for f in todos[:5]]))
    return _steered(found, steering)


def _steered(found: list[Candidate], steering: dict[str, int]) -> list[Candidate]:
    """A category the user marked unhelpful (more often than helpful) drops one priority level."""
    for candidate in found:
        if steering.get(candidate.category, 0) < 0 and candidate.priority != "low":
            candidate.priority = PRIORITIES[PRIORITIES.index(candidate.priority) + 1]
    order = {p: i for i, p in enumerate(PRIORITIES)}
    return sorted(found, key=lambda c: order[c.priority])


def _digest(parts) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


class _ModelEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=40)
    ref: str = Field(min_length=1, max_length=300)


class _ModelStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=3, max_length=140)
    description: str = Field(min_length=3, max_length=1200)
    category: str = Field(min_length=2, max_length=40)
    priority: Literal["high", "medium", "low"]
    related_paths: list[str] = Field(default_factory=list, max_length=10)
    evidence: list[_ModelEvidence] = Field(default_factory=list, max_length=10)


class _ModelAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    next_steps: list[_ModelStep] = Field(min_length=1, max_length=MAX_STEPS)


def _json_text(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()


def _prompt(project: dict[str, Any], facts: dict[str, Any], rule_steps: list[Candidate], steering: dict[str, Any]) -> str:
    files = facts["files"]
    top = sorted(files, key=lambda f: -f["rank"])[:15]
    context = {
        "project": project["name"], "intent": project.get("intent"), "brief": project.get("brief"),
        "decisions": facts["decisions"],
        "workspaces": facts["workspaces"],
        "atlas": {"files": len(files), "most_depended_on": [f["path"] for f in top],
                  "untested": [f["path"] for f in untested_modules(files)[:10]],
                  "todo_fixme": sum(f["todo_count"] for f in files),
                  "do_not_parse": [f["path"] for f in files if f["parse_error"] and f["language"]][:10]} if files else None,
        "failed_deployments": facts["deployments"],
        "signals_found_by_rules": [{"title": c.title, "category": c.category} for c in rule_steps],
        "user_dismissed_or_found_unhelpful": steering["avoid"],
        "user_found_helpful": steering["prefer"],
    }
    return (
        "You suggest the next steps for a software project, from the facts below only (never invent files). "
        "Give at most 5 concrete steps, most important first; do not repeat what the user dismissed or found "
        "unhelpful. Answer with JSON only, of this shape: "
        '{"next_steps": [{"title": str, "description": str, "category": str, "priority": "high"|"medium"|"low", '
        '"related_paths": [str], "evidence": [{"kind": str, "ref": str}]}]}\n\nFacts:\n' + json.dumps(context, default=str)
    )


async def _ask_model(platform: Platform, user_id: str, model: AIModel, prompt: str) -> tuple[_ModelAnswer | None, int]:
    """The validated answer (or None after one retry) and how many calls were made."""
    schema = {"name": "next_steps", "strict": True, "schema": _ModelAnswer.model_json_schema()}
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    calls = 0
    for _ in range(2):
        await ai_budget.spend(platform, user_id)
        calls += 1
        try:
            answer = await model.complete(messages, temperature=0.2, max_tokens=1500,
                                          response_format={"type": "json_schema", "json_schema": schema})
        except Exception as exc:  # the provider failed: the rules answer
            log.warning("next steps: the model failed: %s", type(exc).__name__)
            return None, calls
        content = str(answer.get("content") or "")
        try:
            return _ModelAnswer.model_validate_json(_json_text(content)), calls
        except ValidationError as exc:
            messages = messages + [
                {"role": "assistant", "content": content[:4000]},
                {"role": "user", "content": "That answer is not valid for the schema (" + str(exc.errors()[:3])[:500]
                                            + "). Answer again with the JSON only."},
            ]
    return None, calls


# --------------------------------------------------------------------------------------------------
# Routes' use cases
# --------------------------------------------------------------------------------------------------


def step_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "title": row["title"], "description": row["description"], "category": row["category"],
        "priority": row["priority"], "status": row["status"], "evidence": json.loads(row["evidence"]),
        "related_paths": json.loads(row["related_paths"]), "source": json.loads(row["source"]),
        "feedback": row["feedback"], "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


async def list_steps(platform: Platform, user_id: str, project_id: str, status: str) -> list[dict[str, Any]]:
    await projects.get_owned(platform, user_id, project_id)
    rows = (await platform.db.prepare(
        "SELECT * FROM next_steps WHERE project_id = ? AND status = ? ORDER BY CASE priority WHEN 'high' THEN 0 "
        "WHEN 'medium' THEN 1 ELSE 2 END, seq LIMIT 200"
    ).bind(project_id, status).all()).results
    return [step_view(r) for r in rows]


async def _steering(platform: Platform, project_id: str) -> dict[str, Any]:
    rows = (await platform.db.prepare(
        "SELECT title, category, status, feedback FROM next_steps WHERE project_id = ? AND "
        "(status = 'dismissed' OR feedback IS NOT NULL) ORDER BY seq DESC LIMIT 50"
    ).bind(project_id).all()).results
    score: dict[str, int] = {}
    for row in rows:
        if row["feedback"] == "helpful":
            score[row["category"]] = score.get(row["category"], 0) + 1
        elif row["feedback"] == "not_helpful" or row["status"] == "dismissed":
            score[row["category"]] = score.get(row["category"], 0) - 1
    return {
        "score": score,
        "avoid": [r["title"] for r in rows if r["feedback"] == "not_helpful" or r["status"] == "dismissed"][:20],
        "prefer": [r["title"] for r in rows if r["feedback"] == "helpful"][:20],
    }


def _fingerprint_of(title: str, category: str) -> str:
    words = " ".join(re.findall(r"[a-z0-9]+", title.lower()))
    return "model:" + hashlib.sha256(f"{category.lower()}\n{words}".encode("utf-8")).hexdigest()[:16]


async def generate(platform: Platform, user_id: str, project_id: str) -> dict[str, Any]:
    project = await projects.get_owned(platform, user_id, project_id)
    facts = await signals(platform, project)
    steering = await _steering(platform, project_id)
    rule_steps = rules(project, facts, steering["score"])
    model = await models.for_user(platform, user_id)
    candidates = rule_steps
    source: dict[str, Any] = {"kind": "rules", "provider": None, "model": None, "note": None}
    if models.is_model(model):
        answer, _ = await _ask_model(platform, user_id, model, _prompt(project, facts, rule_steps, steering))
        if answer is None:
            source["note"] = "The model's answer was not valid twice (or the model failed); these steps come from the rules."
        else:
            source = {"kind": "model", "provider": model.provider, "model": model.model, "note": None}
            candidates = [Candidate(title=s.title, description=s.description, category=s.category.lower(),
                                    priority=s.priority, fingerprint=_fingerprint_of(s.title, s.category),
                                    evidence=[e.model_dump() for e in s.evidence], related_paths=s.related_paths)
                          for s in answer.next_steps]
    else:
        source["note"] = "No AI model is configured: these steps come from rules over the project's signals."
    existing = {r["fingerprint"] for r in (await platform.db.prepare(
        "SELECT fingerprint FROM next_steps WHERE project_id = ? AND status IN ('pending', 'started', 'dismissed')"
    ).bind(project_id).all()).results}
    existing_titles = {_fingerprint_of(r["title"], r["category"]) for r in (await platform.db.prepare(
        "SELECT title, category FROM next_steps WHERE project_id = ? AND status IN ('pending', 'started', 'dismissed')"
    ).bind(project_id).all()).results}
    now = now_iso(platform)
    created = []
    statements = []
    for candidate in candidates[:MAX_STEPS]:
        if candidate.fingerprint in existing or _fingerprint_of(candidate.title, candidate.category) in existing_titles:
            continue
        existing.add(candidate.fingerprint)
        row = {"id": new_id(platform, "nxs"), "title": candidate.title, "description": candidate.description,
               "category": candidate.category, "priority": candidate.priority, "status": "pending",
               "evidence": json.dumps(candidate.evidence), "related_paths": json.dumps(candidate.related_paths),
               "source": json.dumps({k: v for k, v in source.items() if k != "note"} | {"note": source["note"]}),
               "feedback": None, "created_at": now, "updated_at": now}
        statements.append(platform.db.prepare(
            "INSERT INTO next_steps (id, project_id, title, description, category, priority, status, evidence, related_paths, "
            "source, feedback, fingerprint, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, NULL, ?, ?, ?)"
        ).bind(row["id"], project_id, row["title"], row["description"], row["category"], row["priority"], row["evidence"],
               row["related_paths"], row["source"], candidate.fingerprint, now, now))
        created.append(step_view(row))
    if statements:
        await platform.db.batch(statements)
    return {"next_steps": created, "generated_count": len(created), "source": source}


_TRANSITIONS = {"pending": {"started", "completed", "dismissed"}, "started": {"completed", "dismissed", "pending"},
                "completed": {"dismissed"}, "dismissed": {"pending"}}


async def _owned_step(platform: Platform, user_id: str, project_id: str, step_id: str) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    row = await platform.db.prepare("SELECT * FROM next_steps WHERE id = ? AND project_id = ?").bind(step_id, project_id).first()
    if row is None:
        raise NotFound("Next step not found.")
    return row


async def set_status(platform: Platform, user_id: str, project_id: str, step_id: str, status: str) -> None:
    from fastest.errors import Conflict

    row = await _owned_step(platform, user_id, project_id, step_id)
    if status != row["status"] and status not in _TRANSITIONS[row["status"]]:
        raise Conflict(f"A {row['status']} step cannot become {status}.", code="invalid_transition")
    await platform.db.prepare("UPDATE next_steps SET status = ?, updated_at = ? WHERE id = ?").bind(
        status, now_iso(platform), step_id).run()


async def feedback(platform: Platform, user_id: str, project_id: str, step_id: str, helpful: bool) -> None:
    await _owned_step(platform, user_id, project_id, step_id)
    await platform.db.prepare("UPDATE next_steps SET feedback = ?, updated_at = ? WHERE id = ?").bind(
        "helpful" if helpful else "not_helpful", now_iso(platform), step_id).run()


