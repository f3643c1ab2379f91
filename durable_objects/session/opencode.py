"""The turn when OpenCode is the agent (`FASTEST_AI_PROVIDER=opencode`): the prompt goes to the
conversation's OpenCode session, and OpenCode's event stream becomes the conversation's frames.

- Before the turn, the conversation's working tree is checked out into the directory OpenCode works
  in (when this runtime reaches it: the local runtime's checkout); after it, what OpenCode changed
  there goes into the working tree and is recorded as the conversation's snapshot.
- Text deltas become `message.delta`, tool parts `tool.call` / `tool.result`, OpenCode's question and
  permission requests `question.asked` (their answers are forwarded to OpenCode), each finished
  OpenCode message `message.completed`.
- At the end, the session's messages as OpenCode reports them (`GET /session/:id/message`) are kept
  with the conversation's messages: their parts are what `opencode-messages` answers.
- An OpenCode server that dies, or cannot be reached, ends the turn with `turn.failed`
  (`opencode_unavailable`); an aborted turn with `turn.failed` `cancelled`. The next prompt starts
  the server again and goes on in the same OpenCode session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from durable_objects.session.state import (
    CONTEXT_KEY,
    OPENCODE_SESSION_KEY,
    QUESTION_PREFIX,
    RUNNING_TURN_KEY,
    SessionPart,
    _message_key,
    _Refusal,
    log,
)
from fastest.errors import ApiError

# How long a turn waits for OpenCode's event stream to open before giving up.
CONNECT_SECONDS = 30.0
# How often a turn looks whether the OpenCode process still runs while the stream is quiet.
LIVENESS_SECONDS = 1.0
PERMISSION_REPLIES = ("once", "always", "reject")


class _Failed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _session_of(event: dict[str, Any]) -> str | None:
    props = event.get("properties") or {}
    for holder in (props, props.get("part") or {}, props.get("info") or {}):
        if isinstance(holder, dict) and isinstance(holder.get("sessionID"), str):
            return holder["sessionID"]
    return None


def permission_question(request: dict[str, Any]) -> dict[str, Any]:
    """OpenCode's permission request as a question request: the same id, one question whose
    options are the replies OpenCode takes."""
    patterns = ", ".join(request.get("patterns") or []) or "this"
    return {
        "id": request["id"], "sessionID": request["sessionID"],
        "questions": [{"question": f"Allow {request.get('permission')} for {patterns}?", "header": "Permission",
                       "options": [{"label": "once", "description": "Allow this time"},
                                   {"label": "always", "description": "Allow from now on"},
                                   {"label": "reject", "description": "Do not allow"}]}],
        **({"tool": request["tool"]} if isinstance(request.get("tool"), dict) else {}),
    }


class _Run:
    """What one turn has seen of OpenCode's stream."""

    def __init__(self, turn_id: str, session_id: str) -> None:
        self.turn_id = turn_id
        self.session_id = session_id
        self.message_ids: dict[str, str] = {}  # OpenCode message id → the conversation's
        self.infos: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, dict[str, Any]] = {}  # part id → latest part
        self.text_parts: set[str] = set()
        self.called: set[str] = set()
        self.answered: set[str] = set()
        self.completed: set[str] = set()
        self.stored: dict[str, dict[str, Any]] = {}  # OpenCode message id → stored message
        self.delta_ids: list[int] = []
        self.error: dict[str, Any] | None = None
        self.busy_seen = False


class OpenCodeTurns(SessionPart):
    """The OpenCode turn (a part of `ConversationSession`)."""

    _opencode_abort: Any = None
    _cancelled = False

    def _opencode(self, server: Any) -> Any:
        from fastest.platform.ai.opencode import OpenCodeClient

        return OpenCodeClient(self._require_platform().http, server)

    async def _opencode_server(self, engine: Any) -> Any:
        from fastest.platform.ai.opencode import OpenCodeError

        host = self._require_platform().opencode
        if host is None:
            raise OpenCodeError("No OpenCode server is configured here: set FASTEST_OPENCODE_URL.")
        return await host.server(self.name, engine.config(), engine.secrets())

    async def _opencode_session(self, client: Any, context: dict[str, Any]) -> str:
        """The conversation's OpenCode session: the one made on its first turn, or a new one when
        that server no longer knows it."""
        session_id = await self.storage.get(OPENCODE_SESSION_KEY)
        if isinstance(session_id, str) and await client.has_session(session_id):
            return session_id
        session = await client.create_session(f"Conversation {self.name}")
        await self.storage.put(OPENCODE_SESSION_KEY, session["id"])
        return session["id"]

    async def _run_opencode_turn(self, turn_id: str, engine: Any, context: dict[str, Any], prompt: str,
                                 user_message: dict[str, Any]) -> None:
        from fastest.platform.ai.opencode import OpenCodeError
        from fastest.services.conversations import checkout

        server = None
        run: _Run | None = None
        checked_out: dict[str, Any] | None = None
        try:
            failure: _Failed | None = None
            try:
                server = await self._opencode_server(engine)
                client = self._opencode(server)
                session_id = await self._opencode_session(client, context)
                run = _Run(turn_id, session_id)
                if server.files is not None:
                    checked_out = await checkout.check_out(self.working_tree(context), server.files)
                self._opencode_abort = lambda: client.abort(session_id)
                await self._follow(client, server, run, prompt, engine)
                await self._keep_opencode_messages(client, run, user_message)
            except OpenCodeError as error:
                if server is not None and await _stopped(server):
                    failure = _Failed("opencode_unavailable", "The OpenCode server stopped during this turn; send the prompt again.")
                else:
                    failure = _Failed("opencode_unavailable", str(error))
            if checked_out is not None:  # what OpenCode did on disk is kept, even from a turn cut short
                await self._take_changes(self.working_tree(context), server.files, checked_out, turn_id, context)
            if failure is not None:
                raise failure
            if self._cancelled:
                raise _Failed("cancelled", "The turn was cancelled.")
            if run.error is not None:
                raise _Failed(*run_error(run.error))
            await self.emit("turn.completed", {"turn_id": turn_id})
            from fastest.services.conversations.turn_events import turn_completed

            await turn_completed(self._require_platform(), self.name, turn_id, context)
        except _Failed as failure:
            code = "cancelled" if self._cancelled else failure.code
            message = "The turn was cancelled." if code == "cancelled" else str(failure)
            await self._expire_questions(turn_id)
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": code, "message": message}})
        except asyncio.CancelledError:
            if not self._cancelled:  # the server is stopping: the next life reports the turn
                raise
            await self._expire_questions(turn_id)
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": "cancelled", "message": "The turn was cancelled."}})
        except Exception:
            log.exception("conversation %s: OpenCode turn %s failed", self.name, turn_id)
            await self._expire_questions(turn_id)
            await self.emit("turn.failed", {"turn_id": turn_id, "error": {"code": "internal", "message": "The turn failed."}})
        finally:
            if run is not None:
                await self._remember_deltas(run.delta_ids)
            host = self.platform.opencode if self.platform is not None else None
            if host is not None:
                host.done(self.name)
            self._opencode_abort = None
            self._cancelled = False
            self._busy = False
            self._turn_task = None
            with contextlib.suppress(Exception):
                await self.storage.delete(RUNNING_TURN_KEY)

    async def _follow(self, client: Any, server: Any, run: _Run, prompt: str, engine: Any) -> None:
        """Open the event stream, send the prompt, and turn events into frames until OpenCode says
        the session is idle again."""
        from fastest.platform.ai.opencode import OpenCodeError

        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in client.events():
                    queue.put_nowait(event)
            except Exception as exc:  # the stream broke or ended: the turn decides what it means
                queue.put_nowait(exc)

        reader = asyncio.ensure_future(pump())
        try:
            first = await asyncio.wait_for(queue.get(), CONNECT_SECONDS)
            if isinstance(first, Exception):
                raise first
            await client.prompt(run.session_id, prompt, engine.opencode_model)
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), LIVENESS_SECONDS)
                except asyncio.TimeoutError:
                    if not server.running():
                        raise OpenCodeError("The OpenCode server stopped.") from None
                    continue
                if isinstance(event, Exception):
                    raise event
                if _session_of(event) != run.session_id:
                    continue
                if await self._on_event(client, run, event):
                    return
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _on_event(self, client: Any, run: _Run, event: dict[str, Any]) -> bool:
        """One of our session's events; True when the turn is over."""
        kind, props = event["type"], event.get("properties") or {}
        if kind == "session.status":
            status = (props.get("status") or {}).get("type")
            run.busy_seen = run.busy_seen or status == "busy"
            return status == "idle" and run.busy_seen
        if kind == "session.idle":
            return run.busy_seen
        if kind == "session.error":
            run.error = props.get("error") or {"name": "UnknownError", "data": {"message": "OpenCode reported an error."}}
        elif kind == "message.updated":
            await self._on_message(run, props.get("info") or {})
        elif kind == "message.part.updated":
            await self._on_part(run, props.get("part") or {})
        elif kind == "message.part.delta":
            if props.get("partID") in run.text_parts and props.get("field") == "text" and props.get("delta"):
                emitted = await self.emit("message.delta", {"message_id": self._our_id(run, props.get("messageID")),
                                                            "turn_id": run.turn_id, "delta": props["delta"]})
                run.delta_ids.append(emitted["id"])
        elif kind == "question.asked":
            await self._ask_opencode(run, "question", props, props)
        elif kind == "permission.asked":
            await self._ask_opencode(run, "permission", permission_question(props), props)
        elif kind == "question.replied":
            await self._answered_elsewhere(props.get("requestID"), props.get("answers") or [])
        elif kind == "question.rejected":
            await self._answered_elsewhere(props.get("requestID"), None)
        elif kind == "permission.replied":
            reply = props.get("reply")
            await self._answered_elsewhere(props.get("requestID"), None if reply == "reject" else [[str(reply)]])
        return False

    def _our_id(self, run: _Run, opencode_id: Any) -> str:
        opencode_id = str(opencode_id or "")
        if opencode_id not in run.message_ids:
            run.message_ids[opencode_id] = self._new_id("msg")
        return run.message_ids[opencode_id]

    async def _on_message(self, run: _Run, info: dict[str, Any]) -> None:
        if info.get("role") != "assistant" or not isinstance(info.get("id"), str):
            return
        run.infos[info["id"]] = info
        if (info.get("time") or {}).get("completed") and info["id"] not in run.completed:
            run.completed.add(info["id"])
            stored = await self._add_message(self._assistant_message(run, info))
            run.stored[info["id"]] = stored
            await self.emit("message.completed", {"message": stored})

    def _assistant_message(self, run: _Run, info: dict[str, Any]) -> dict[str, Any]:
        parts = [part for part in run.parts.values() if part.get("messageID") == info["id"]]
        return {
            "id": self._our_id(run, info["id"]), "role": "assistant", "turn_id": run.turn_id,
            "content": "".join(part.get("text") or "" for part in parts if part.get("type") == "text"),
            "provider": "opencode", "model": f"{info.get('providerID')}/{info.get('modelID')}",
            "opencode": {"sessionID": run.session_id, "messageID": info["id"]}, "parts": parts,
        }

    async def _on_part(self, run: _Run, part: dict[str, Any]) -> None:
        if not isinstance(part.get("id"), str):
            return
        run.parts[part["id"]] = part
        if part.get("type") == "text":
            run.text_parts.add(part["id"])
        if part.get("type") != "tool":
            return
        state = part.get("state") or {}
        status, call_id = state.get("status"), str(part.get("callID") or part["id"])
        if status in ("running", "completed", "error") and call_id not in run.called:
            run.called.add(call_id)
            await self.emit("tool.call", {"turn_id": run.turn_id, "call_id": call_id, "name": part.get("tool"),
                                          "arguments": json.dumps(state.get("input") or {}, ensure_ascii=False)})
        if status in ("completed", "error") and call_id not in run.answered:
            run.answered.add(call_id)
            ok = status == "completed"
            await self.emit("tool.result", {"turn_id": run.turn_id, "call_id": call_id, "name": part.get("tool"), "ok": ok,
                                            "result": str(state.get("output") if ok else state.get("error") or "")})

    async def _ask_opencode(self, run: _Run, kind: str, request: dict[str, Any], original: dict[str, Any]) -> None:
        request_id = str(request.get("id") or "")
        record = {"id": request_id, "turn_id": run.turn_id, "status": "pending", "engine": "opencode", "kind": kind,
                  "request": request, "created_at": self._now()}
        data = {"turn_id": run.turn_id, "request_id": request_id, "request": request}
        if kind == "permission":
            record["permission"] = data["permission"] = original
        await self.storage.put(QUESTION_PREFIX + request_id, record)
        await self.emit("question.asked", data)

    async def _answered_elsewhere(self, request_id: Any, answers: Any) -> None:
        """OpenCode says a request was answered (by us, or by another of its clients)."""
        record = await self.storage.get(QUESTION_PREFIX + str(request_id or ""))
        if record is None or record["status"] != "pending":
            return
        record.update(status="answered" if answers is not None else "rejected", answers=answers, answered_at=self._now())
        await self.storage.put(QUESTION_PREFIX + record["id"], record)
        await self.emit("question." + record["status"], {"request_id": record["id"], "answers": answers})

    async def _answer_opencode(self, record: dict[str, Any], answers: Any) -> None:
        """Forward a reply or a rejection to OpenCode (called by `Questions.answer`)."""
        from fastest.platform.ai.opencode import OpenCodeError

        context = await self.storage.get(CONTEXT_KEY)
        engine = await self._model(context)
        try:
            client = self._opencode(await self._opencode_server(engine))
            if record.get("kind") == "permission":
                reply = answers[0][0] if answers and answers[0] and answers[0][0] in PERMISSION_REPLIES else "once"
                await client.reply_permission(record["id"], "reject" if answers is None else reply)
            elif answers is None:
                await client.reject_question(record["id"])
            else:
                await client.reply_question(record["id"], answers)
        except OpenCodeError as error:
            raise _Refusal(503, "opencode_unavailable", str(error)) from error

    async def _expire_questions(self, turn_id: str) -> None:
        """A turn that ended leaves no question pending (OpenCode no longer waits for it)."""
        for key, record in (await self.storage.list(prefix=QUESTION_PREFIX)).items():
            if record.get("turn_id") == turn_id and record.get("status") == "pending":
                record.update(status="expired")
                await self.storage.put(key, record)
                await self.emit("question.expired", {"request_id": record["id"]})

    async def _keep_opencode_messages(self, client: Any, run: _Run, user_message: dict[str, Any]) -> None:
        """Keep the turn's messages as OpenCode reports them: each OpenCode message's parts go with
        the conversation message it maps to (the prompt's user message, the assistant messages made
        during the turn; one that never completed is added now)."""
        reported = await client.messages(run.session_id)
        ours = {item["info"]["id"] for item in reported if item.get("info", {}).get("role") == "assistant"
                and item["info"]["id"] in run.infos}
        for item in reported:
            info, parts = item.get("info") or {}, list(item.get("parts") or [])
            if info.get("role") == "user" and any(run.infos.get(m, {}).get("parentID") == info.get("id") for m in ours):
                await self._update_message(user_message, {"opencode": {"sessionID": run.session_id, "messageID": info["id"]},
                                                          "parts": parts})
            elif info.get("id") in ours:
                for part in parts:
                    run.parts[part["id"]] = part
                stored = run.stored.get(info["id"])
                if stored is None:
                    stored = await self._add_message(self._assistant_message(run, info))
                    run.stored[info["id"]] = stored
                await self._update_message(stored, {"parts": parts, "content": "".join(
                    p.get("text") or "" for p in parts if p.get("type") == "text")})

    async def _update_message(self, message: dict[str, Any], changes: dict[str, Any]) -> None:
        message.update(changes)
        await self.storage.put(_message_key(message["seq"]), message)

    async def _take_changes(self, tree: Any, files: Any, checked_out: dict[str, Any], turn_id: str,
                            context: dict[str, Any]) -> None:
        """What OpenCode changed in its directory becomes the working tree's, then a snapshot."""
        from fastest.services import conversations
        from fastest.services.conversations import checkout

        changes = await checkout.take_changes(tree, files, checked_out)
        for change in changes:
            await self.emit("file.changed", {"turn_id": turn_id, **change})
        if not changes:
            return
        try:
            await conversations.snapshot(self._require_platform(), context["user_id"], self.name, generate_summary=False)
        except ApiError as error:  # a storage limit, say: the changes stay in the working tree
            log.warning("conversation %s: the turn's snapshot was not recorded: %s", self.name, error.message)

    async def abort_turn(self) -> dict[str, Any]:
        """Stop the running turn: OpenCode's session is aborted, our own loop cancelled; the turn
        ends with `turn.failed` `cancelled`."""
        if not self._busy:
            raise _Refusal(409, "turn_not_running", "No turn is running in this conversation.")
        turn_id = await self.storage.get(RUNNING_TURN_KEY)
        self._cancelled = True
        abort = self._opencode_abort
        if abort is not None:
            try:
                await abort()
                return {"success": True, "turn_id": turn_id}
            except Exception:
                log.warning("conversation %s: OpenCode did not take the abort; cancelling the turn", self.name)
        task = self._turn_task
        if task is not None and hasattr(task, "cancel"):
            task.cancel()
        return {"success": True, "turn_id": turn_id}


async def _stopped(server: Any, wait: float = 2.0) -> bool:
    """Whether the server's process has exited: a broken stream often comes a moment before the
    process's exit is seen, so look again for a little while (a server elsewhere: not ours to see)."""
    if server.alive is None:
        return False
    for _ in range(int(wait / 0.05)):
        if not server.running():
            return True
        await asyncio.sleep(0.05)
    return False


def run_error(error: dict[str, Any]) -> tuple[str, str]:
    name = str(error.get("name") or "UnknownError")
    message = str((error.get("data") or {}).get("message") or "OpenCode reported an error.")
    if name == "MessageAbortedError":
        return "cancelled", "The turn was cancelled."
    return "opencode_error", f"{name}: {message}"
