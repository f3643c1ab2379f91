"""Action-item runs inside a `ConversationSession` object (one object per run, named `run:<id>`).

The object holds the run's working tree (the workspace's tree as its base, the agent's edits as
the overlay: a copy, the workspace never changes here) and runs the agent turn *headless*: the item
is the prompt, the tools are a chat's file tools, and `ask_question` answers itself (no one is
watching). The object's **alarm** drives it: `POST /run/start` stores the task and sets an alarm
for now; each `alarm()` runs one attempt. State in storage (`run:state`) says where it is, so a run
survives its object being evicted or the server restarting:

- an alarm that finds an attempt marked in progress knows that attempt was cut short (the runtime
  re-delivers an alarm whose handler died: at-least-once), counts it, and starts the next one, or
  fails the run `interrupted` when none is left: a run never hangs;
- an attempt whose turn fails, or whose checks fail, is retried after a backoff (a new alarm), with
  the reason given to the next attempt, until `max_attempts`; then the run fails with the reason;
- with the builtin engine (no model) the run fails at once with `model_not_configured`.

The session object lends its routes (`ConversationSession._route` → `route`), its alarm
(`ConversationSession.alarm` → `alarm`) and its public turn API (`run_headless_turn`,
`working_tree`); the rest is here.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastest.ports import SessionResponse

log = logging.getLogger("fastest.runs")

STATE_KEY = "run:state"
RETRY_BASE_SECONDS = 30  # backoff before attempt n+1: 30 s × 2^(n-1)
MODEL_NOT_CONFIGURED = (
    "No model is configured, so no agent can fix this. Configure one on the server (FASTEST_AI_PROVIDER=openai "
    "with FASTEST_AI_BASE_URL and FASTEST_AI_MODEL for any OpenAI-compatible server, or anthropic / workers-ai, "
    "plus FASTEST_AI_API_KEY), or store your own provider key with POST /v1/auth/api-keys; then start a new run."
)
HEADLESS_ANSWER = "No one is watching this run: decide yourself, and say what you decided in your final message."


def _json(status: int, body: Any) -> SessionResponse:
    return SessionResponse(status=status, body=json.dumps(body).encode(), headers={"content-type": "application/json"})


async def route(session: Any, method: str, path: str, body: dict[str, Any], context: dict[str, Any]) -> SessionResponse | None:
    """The object's `/run/…` routes (called from `ConversationSession._route`)."""
    if (method, path) == ("POST", "/run/start"):
        if await session.storage.get(STATE_KEY) is not None:
            return _json(409, {"error": {"code": "run_exists", "message": "This object already holds a run."}})
        state = {"run_id": body["run_id"], "item": body["item"], "prompt": body["prompt"],
                 "max_attempts": int(body.get("max_attempts") or 3), "attempt": 0, "phase": "queued", "last_error": None}
        await session.storage.put(STATE_KEY, state)
        await session.storage.set_alarm(_now_ms(session))
        return _json(202, {"state": state})
    if (method, path) == ("GET", "/run/state"):
        return _json(200, {"state": await session.storage.get(STATE_KEY)})
    return None


def _now_ms(session: Any) -> int:
    return int(session.platform.clock.now().timestamp() * 1000)


async def alarm(session: Any) -> None:
    """One step of the run: start the next attempt (after an interrupted one, if so)."""
    from fastest.services.action_items import runs as action_item_runs

    state = await session.storage.get(STATE_KEY)
    if state is None or state["phase"] == "done":
        return
    platform = session.platform
    context = await session.storage.get("context")
    if state["phase"] == "attempting":  # the previous attempt's handler died with its process
        state["last_error"] = {"code": "interrupted", "message": f"Attempt {state['attempt']} was interrupted (the server stopped)."}
    if state["attempt"] >= state["max_attempts"]:
        await _fail(session, state, state["last_error"] or {"code": "failed", "message": "The run failed."})
        return
    state["attempt"] += 1
    state["phase"] = "attempting"
    await session.storage.put(STATE_KEY, state)
    await action_item_runs.mark_running(platform, state["run_id"], state["attempt"])
    try:
        outcome = await _attempt(session, state, context)
    except Exception as exc:  # an unexpected failure is one failed attempt, not a stuck run
        log.exception("run %s: attempt %d failed", state["run_id"], state["attempt"])
        outcome = ("retry", {"code": "internal", "message": f"The attempt failed: {type(exc).__name__}."}, None)
    kind, payload, checks = outcome
    if kind == "ready":
        await action_item_runs.finish_ready(platform, state["run_id"], payload)
        state.update(phase="done", last_error=None)
        await session.storage.put(STATE_KEY, state)
        return
    if kind == "failed" or state["attempt"] >= state["max_attempts"]:
        await _fail(session, state, payload, checks=checks)
        return
    state.update(phase="waiting", last_error=payload)
    await session.storage.put(STATE_KEY, state)
    await action_item_runs.note_retry(platform, state["run_id"], payload, checks)
    delay = _retry_base(session) * (2 ** (state["attempt"] - 1))
    await session.storage.set_alarm(_now_ms(session) + int(delay * 1000))


def _retry_base(session: Any) -> float:
    return float(getattr(session.platform.settings, "action_item_run_retry_seconds", RETRY_BASE_SECONDS))


async def _fail(session: Any, state: dict[str, Any], error: dict[str, Any], *, checks: list[dict[str, Any]] | None = None) -> None:
    from fastest.services.action_items import runs as action_item_runs

    state.update(phase="done", last_error=error)
    await session.storage.put(STATE_KEY, state)
    await action_item_runs.finish_failed(session.platform, state["run_id"], error, checks=checks)


async def _reset_copy(session: Any) -> None:
    """A fresh copy of the workspace's files and an empty conversation for a new attempt."""
    from durable_objects.session.state import (
        EVENT_PREFIX,
        MESSAGE_PREFIX,
        QUESTION_PREFIX,
    )
    from fastest.services.conversations.working_tree import OVERLAY_PREFIX

    for prefix in (OVERLAY_PREFIX, MESSAGE_PREFIX, QUESTION_PREFIX, EVENT_PREFIX):
        for key in await session.storage.list(prefix=prefix):
            await session.storage.delete(key)


async def _attempt(session: Any, state: dict[str, Any], context: dict[str, Any]) -> tuple[str, Any, Any]:
    """One headless agent turn and the evaluation of its result: ("ready", result, checks),
    ("retry", error, checks) or ("failed", error, checks)."""
    from fastest.services.action_items import runs as action_item_runs

    platform = session.platform
    await _reset_copy(session)
    prompt = state["prompt"]
    if state.get("last_error"):
        prompt += f"\n\nA previous attempt failed: {state['last_error']['message']} Avoid that this time."
    turn = await session.run_headless_turn(prompt, context)
    if turn.status == "model_not_configured":
        return "failed", {"code": "model_not_configured", "message": MODEL_NOT_CONFIGURED}, None
    if turn.status != "completed":
        return "retry", turn.error, None
    answer = turn.answer
    tree = session.working_tree(context)
    result = await action_item_runs.evaluate(platform, context["user_id"], state["item"], context.get("manifest_hash"),
                                             await tree.overlay())
    failed = [c for c in result["checks"] if not c["ok"]]
    report = action_item_runs.report_of(state["item"], answer, result, state["attempt"])
    if failed:
        reasons = "; ".join(f"{c['name']}{' ' + c['path'] if c.get('path') else ''}: {c['detail']}" for c in failed)
        return "retry", {"code": "checks_failed", "message": f"Checks failed: {reasons}"[:2000]}, result["checks"]
    summary = (answer.strip().splitlines() or [f"Fixed: {state['item']['title']}"])[0][:500]
    return "ready", {**result, "summary": summary, "report": report}, result["checks"]
