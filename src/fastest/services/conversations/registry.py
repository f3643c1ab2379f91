"""Conversations: chat sessions on a workspace, each held by a `ConversationSession` object.

D1 keeps the index (owner, project, workspace, title) for lists and ownership checks; everything
else — messages, events, questions, the working tree's overlay — is the session object's, reached
with `platform.sessions.get(conversation_id).fetch(...)`. Another user's conversation is a 404.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from fastest.domain import tree
from fastest.domain.manifest import is_sha256_hex
from fastest.errors import (
    AIRateLimited,
    ApiError,
    Conflict,
    Internal,
    InvalidJson,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    ValidationFailed,
)
from fastest.platform import Platform
from fastest.ports import RateDecision, SessionRequest
from fastest.services import events, identity, storage
from fastest.services.ai import ai_budget
from fastest.services.billing import entitlements
from fastest.services.common import new_id, now_iso, split_page
from fastest.services.conversations import streams, working_tree
from fastest.services.sync import snapshots, workspaces

TITLE_MAX = 80

_SELECT = (
    "SELECT c.seq, c.id, c.user_id, c.project_id, c.workspace_id, c.title, c.created_at, c.updated_at, "
    "w.name AS workspace_name, p.name AS project_name FROM conversations c "
    "JOIN workspaces w ON w.id = c.workspace_id JOIN projects p ON p.id = c.project_id"
)


def conversation_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in (
        "id", "workspace_id", "title", "workspace_name", "project_id", "project_name", "created_at", "updated_at",
    )}


async def get_owned(platform: Platform, user_id: str, conversation_id: str) -> dict[str, Any]:
    row = await platform.db.prepare(f"{_SELECT} WHERE c.id = ? AND c.user_id = ?").bind(conversation_id, user_id).first()
    if row is None:
        raise NotFound("Conversation not found.")
    return row


async def _base_manifest(platform: Platform, user_id: str, workspace: Mapping[str, Any]) -> str | None:
    """The tree a conversation starts from: the workspace's current manifest, else its head's."""
    if workspace["current_manifest_hash"]:
        return workspace["current_manifest_hash"]
    if workspace["current_snapshot_id"]:
        return (await snapshots.get_owned(platform, user_id, workspace["current_snapshot_id"]))["manifest_hash"]
    return None


async def create(platform: Platform, user_id: str, workspace_id: str, title: str | None) -> dict[str, Any]:
    workspace = await workspaces.get_owned(platform, user_id, workspace_id)
    await entitlements.require(platform, user_id, "conversations", adding=1)  # the plan's limit
    conversation_id = new_id(platform, "cnv")
    context = {
        "conversation_id": conversation_id, "user_id": user_id, "project_id": workspace["project_id"],
        "workspace_id": workspace_id, "manifest_hash": await _base_manifest(platform, user_id, workspace),
    }
    # The session first: a conversation row never points at an uninitialised session.
    await _session(platform, conversation_id, "PUT", "/context", context)
    now = now_iso(platform)
    await platform.db.batch([
        platform.db.prepare(
            "INSERT INTO conversations (id, user_id, project_id, workspace_id, title, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        ).bind(conversation_id, user_id, workspace["project_id"], workspace_id, title, now, now),
        *events.record(platform, workspace["project_id"], user_id, "conversation.created",
                       f"Started conversation {conversation_id}", {"conversation_id": conversation_id, "workspace_id": workspace_id}),
    ])
    return conversation_view(await get_owned(platform, user_id, conversation_id))


async def list_page(platform: Platform, user_id: str, *, limit: int, before_seq: int | None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, across projects; the cursor is the insertion position of the last row."""
    rows = (await platform.db.prepare(
        f"{_SELECT} WHERE c.user_id = ? AND c.seq < ? ORDER BY c.seq DESC LIMIT ?"
    ).bind(user_id, before_seq if before_seq is not None else 2**53 - 1, limit + 1).all()).results
    page, cursor = split_page(rows, limit, lambda r: (r["seq"],))
    return [conversation_view(r) for r in page], cursor


async def update(platform: Platform, user_id: str, conversation_id: str, *, title: str | None, workspace_id: str | None) -> None:
    """Rename, and/or move to another workspace of the same project (its manifest becomes the base of
    the working tree; the conversation's own edits stay on top)."""
    conversation = await get_owned(platform, user_id, conversation_id)
    target = conversation["workspace_id"]
    if workspace_id is not None and workspace_id != target:
        workspace = await workspaces.get_owned(platform, user_id, workspace_id)
        if workspace["project_id"] != conversation["project_id"]:
            raise ValidationFailed(
                "A conversation can only move to a workspace of its own project.", code="workspace_not_in_project",
                fields={"workspace_id": "not a workspace of this conversation's project"},
            )
        await _session(platform, conversation_id, "PATCH", "/context", {
            "workspace_id": workspace_id, "manifest_hash": await _base_manifest(platform, user_id, workspace),
        })
        target = workspace_id
    await platform.db.prepare(
        "UPDATE conversations SET title = COALESCE(?, title), workspace_id = ?, updated_at = ? WHERE id = ?"
    ).bind(title, target, now_iso(platform), conversation_id).run()


def title_from(prompt: str) -> str:
    line = next((line.strip() for line in prompt.splitlines() if line.strip()), "Conversation")
    return line if len(line) <= TITLE_MAX else line[: TITLE_MAX - 1].rstrip() + "…"


async def auto_title(platform: Platform, conversation_id: str, prompt: str) -> None:
    """Name an untitled conversation after its first prompt (called by the session object)."""
    await platform.db.prepare(
        "UPDATE conversations SET title = COALESCE(title, ?), updated_at = ? WHERE id = ?"
    ).bind(title_from(prompt), now_iso(platform), conversation_id).run()


# --------------------------------------------------------------------------------------------------
# Talking to the session object
# --------------------------------------------------------------------------------------------------

_ERRORS: dict[int, type[ApiError]] = {
    400: InvalidJson, 404: NotFound, 409: Conflict, 413: PayloadTooLarge, 422: ValidationFailed,
    429: AIRateLimited, 503: Unavailable,
}


async def _session(platform: Platform, conversation_id: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """One request to the conversation's session object; its refusals become the matching ApiError."""
    response = await platform.sessions.get(conversation_id).fetch(SessionRequest(
        method=method, path=path, body=json.dumps(body).encode() if body is not None else b"",
        headers={"content-type": "application/json"},
    ))
    try:
        answer = json.loads(response.body or b"{}")
    except ValueError as exc:
        raise Internal("The conversation's session answered garbage.") from exc
    if response.status >= 400:
        error = answer.get("error") or {}
        extra = {k: v for k, v in answer.items() if k not in ("error", "fields")}
        cls = _ERRORS.get(response.status, Internal)
        headers = {}
        resets_at = (extra.get("ai_rate_limit") or {}).get("resets_at")
        if response.status == 429 and isinstance(resets_at, str):
            headers["Retry-After"] = ai_budget.retry_after(platform, resets_at)
        raise cls(error.get("message"), code=error.get("code"), fields=answer.get("fields"), extra=extra, headers=headers)
    return answer


async def call(platform: Platform, user_id: str, conversation_id: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """Forward a request for this user's conversation to its session object (404 if not theirs)."""
    await get_owned(platform, user_id, conversation_id)
    return await _session(platform, conversation_id, method, path, body)


async def project_info(platform: Platform, user_id: str, conversation_id: str) -> dict[str, Any]:
    conversation = await get_owned(platform, user_id, conversation_id)
    info = await _session(platform, conversation_id, "GET", "/project-info")
    return {"project_info": {**info, "project_name": conversation["project_name"], "workspace_name": conversation["workspace_name"]}}


# --------------------------------------------------------------------------------------------------
# Snapshot: freeze the working tree
# --------------------------------------------------------------------------------------------------


async def _summary(platform: Platform, user_id: str, changes: Mapping[str, Any]) -> str:
    """A summary of the changes: by the model when one is configured (one unit of AI budget), else
    a plain list (never a pretend model answer)."""
    from fastest.services.ai import models

    listing = [f"{'deleted' if change.get('deleted') else 'wrote'} {path}" for path, change in sorted(changes.items())]
    plain = f"{len(listing)} file(s) changed: " + ", ".join(listing[:20]) + (" …" if len(listing) > 20 else "")
    if not listing:
        return "No changes."
    model = await models.for_user(platform, user_id)
    if not models.is_model(model):
        return plain
    await ai_budget.spend(platform, user_id)
    answer = await model.complete([
        {"role": "system", "content": "Summarise these file changes as one short commit message."},
        {"role": "user", "content": "\n".join(listing[:200])},
    ])
    return str(answer.get("content") or plain).strip()[:500]


async def snapshot(platform: Platform, user_id: str, conversation_id: str, *, generate_summary: bool) -> dict[str, Any]:
    """Freeze the conversation's working tree: the overlay applied to its base becomes manifests (the
    file bodies are already stored) and a snapshot in the conversation's workspace history; the
    session's base moves to it. The workspace itself does not move: it mirrors a folder, which only
    changes when its owner restores or checks out the snapshot. `was_dirty` says whether there
    were edits to freeze."""
    conversation = await get_owned(platform, user_id, conversation_id)
    state = await _session(platform, conversation_id, "GET", "/files/changes")
    base, overlay = state.get("manifest_hash"), state.get("changes") or {}
    if base is not None and not is_sha256_hex(base):
        raise Internal("The conversation's base manifest is not a hash.")
    changes = working_tree.as_changes(overlay)
    old_root = base or tree.EMPTY_TREE_HASH
    try:
        root = await storage.store_changed_tree(platform, user_id, old_root, changes)
    except tree.ManifestError as exc:
        raise ValidationFailed(f"The working tree cannot be frozen: {exc}", code=exc.code) from exc
    summary = await _summary(platform, user_id, overlay) if generate_summary else None
    # The parent: the conversation's previous snapshot, else the workspace's head when it started.
    parent = state.get("snapshot_id")
    if parent is None:
        parent = (await workspaces.get_owned(platform, user_id, conversation["workspace_id"]))["current_snapshot_id"]
    parents = [parent] if parent else []
    created, _ = await snapshots.create(
        platform, user_id, conversation["project_id"], manifest_hash=root, parent_ids=parents,
        workspace_id=conversation["workspace_id"], source="conversation", summary=summary, move_workspace=False,
    )
    await _session(platform, conversation_id, "POST", "/files/rebase",
                   {"manifest_hash": root, "frozen": overlay, "snapshot_id": created["id"]})
    return {"snapshot_id": created["id"], "manifest_hash": root, "was_dirty": bool(overlay), "summary": summary}


# --------------------------------------------------------------------------------------------------
# Opening a live stream (the WebSocket, or SSE): the same rules on both runtimes
# --------------------------------------------------------------------------------------------------

# WebSocket close codes for a stream that cannot open: the HTTP status, in the 4000 range.
STREAM_CLOSE_CODES = {401: 4401, 403: 4403, 404: 4404, 429: 4429}
_EVENT_ID_DIGITS = 15


def stream_close_code(status: int) -> int:
    return STREAM_CLOSE_CODES.get(status, 4400)


def stream_token(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The caller's token: `?token=` (browsers cannot put headers on a WebSocket or an EventSource),
    else an `Authorization: Bearer` header. `headers` has lower-case names (or ignores case)."""
    token = query.get("token")
    if token is None:
        header = headers.get("authorization") or ""
        if header[:7].lower() == "bearer ":
            token = header[7:].strip()
    return token


def stream_since(query: Mapping[str, str], headers: Mapping[str, str]) -> int | None:
    """The last event id the client has: `Last-Event-ID` (what an EventSource sends when it
    reconnects), else `?since=`; None: live events only. Anything but a plain event id is a 422."""
    raw = headers.get("last-event-id")
    if raw is None:
        raw = query.get("since")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > _EVENT_ID_DIGITS:
        raise ValidationFailed("since is a non-negative event id.", fields={"since": "not an event id"})
    return int(raw)


async def open_stream(
    platform: Platform, conversation_id: str, query: Mapping[str, str], headers: Mapping[str, str],
    *, on_rate_decision: Callable[[RateDecision], None] | None = None,
) -> streams.OpenedStream:
    """Everything a stream request must pass before it reaches the session object, in this order:
    the token (with the `conversations` ability; one unit of the default rate class), the
    conversation (the caller's own), then `since` (so a stranger learns nothing from a validation
    error). Returns where the replay starts and the stream's grant (it ends with its token:
    `streams`). Used by the local routes and by the Worker that forwards streams to the Durable
    Object, so both runtimes accept and refuse the same."""
    token = stream_token(query, headers)
    principal = await identity.authorize(platform, token, "conversations", on_rate_decision=on_rate_decision)
    await get_owned(platform, principal.user_id, conversation_id)
    since = stream_since(query, headers)
    await streams.record(platform, principal.token_id, conversation_id)
    expires = principal.expires_at.timestamp() if principal.expires_at is not None else float("inf")
    return streams.OpenedStream(since=since, token_id=principal.token_id, expires_at=expires)
