"""Conversations: chat with a coding agent on a workspace's files.

HTTP routes go through `services.conversations`, which forwards to the conversation's session object.
The live stream is a WebSocket (`GET /v1/conversations/{id}/stream`, `?token=`, `?since=`) or, for
clients that cannot use one, server-sent events (`GET /v1/conversations/{id}/events`, honouring
`Last-Event-ID`). Both carry the same frames: `{type, id, data}` with monotonic event ids.

On the local runtime both streams attach to the in-process session object. On Cloudflare the Worker
opens both by the same rules (`conversations.open_stream`) and hands them to the Durable Object
itself (`src/entry.py`), which holds the WebSocket with the hibernation API and writes SSE into a
streaming response.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator
from urllib.parse import urlencode

from fastapi import (
    APIRouter,
    Depends,
    Path,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import StreamingResponse

from fastest.api.deps import PageParams, PlatformDep, authorize, page_params
from fastest.api.idempotency import respond_once
from fastest.api.path_ids import ConversationId, RequestId
from fastest.errors import ApiError, Unavailable
from fastest.platform import Platform
from fastest.ports import RateDecision
from fastest.schemas.common import Success, problem_responses
from fastest.schemas.conversations import (
    Cleared,
    ConversationCreate,
    ConversationList,
    ConversationResponse,
    ConversationSnapshot,
    ConversationSnapshotCreate,
    ConversationUpdate,
    DeploymentList,
    DeploymentLogs,
    MessageList,
    OpencodeMessages,
    ProjectInfo,
    PromptAccepted,
    PromptCreate,
    QuestionReply,
    Timeline,
    TurnAborted,
)
from fastest.services import conversations
from fastest.services.conversations import deploys as conversation_deploys
from fastest.services.identity.accounts import Principal

router = APIRouter(tags=["conversations"], responses=problem_responses(400, 401, 403, 404, 413, 422, 429))

chat = authorize("conversations")
# Routes that call a model: the AI rate class (6/min by default) on top of the AI budget.
chat_ai = authorize("conversations", route_class="ai")


@router.post("/v1/conversations", response_model=ConversationResponse, status_code=201, summary="Start a conversation on a workspace")
async def create_conversation(
    *,
    body: ConversationCreate, request: Request, principal: Principal = Depends(chat), platform: PlatformDep
):
    async def produce():
        return 201, {"conversation": await conversations.create(platform, principal.user_id, body.workspace_id, body.title)}

    return await respond_once(request, platform, principal.user_id, produce)


@router.get("/v1/conversations", response_model=ConversationList, summary="The user's conversations across projects, newest first")
async def list_conversations(
    *,
    page: PageParams = Depends(page_params(20)), principal: Principal = Depends(chat), platform: PlatformDep
):
    key = page.key(int)
    items, next_cursor = await conversations.list_page(platform, principal.user_id, limit=page.limit, before_seq=key[0] if key else None)
    return {"conversations": items, "next_cursor": next_cursor}


@router.get("/v1/conversations/{conversation_id}", response_model=ConversationResponse, summary="A conversation with its workspace and project")
async def get_conversation(*, conversation_id: ConversationId, principal: Principal = Depends(chat), platform: PlatformDep):
    return {"conversation": conversations.conversation_view(await conversations.get_owned(platform, principal.user_id, conversation_id))}


@router.patch("/v1/conversations/{conversation_id}", response_model=Success, summary="Rename, or move to another workspace of the same project")
async def update_conversation(
    *,
    body: ConversationUpdate, conversation_id: ConversationId, principal: Principal = Depends(chat), platform: PlatformDep
):
    await conversations.update(platform, principal.user_id, conversation_id, title=body.title, workspace_id=body.workspace_id)
    return {"success": True}


@router.get("/v1/conversations/{conversation_id}/messages", response_model=MessageList, summary="Messages, oldest first (the last `limit` before `before`)")
async def get_messages(
    *,
    conversation_id: ConversationId,
    limit: int = Query(50, ge=1, le=100, description="How many messages (1–100)."),
    before: str | None = Query(None, max_length=40, description="Only messages created before this ISO-8601 time."),
    principal: Principal = Depends(chat),
    platform: PlatformDep,
):
    path = "/messages?" + urlencode({"limit": limit, **({"before": before} if before else {})})
    return await conversations.call(platform, principal.user_id, conversation_id, "GET", path)


@router.post(
    "/v1/conversations/{conversation_id}/messages", response_model=PromptAccepted, status_code=202,
    responses=problem_responses(409), summary="Send a prompt; the answer streams on the WebSocket / SSE",
)
async def post_message(
    *,
    body: PromptCreate, request: Request, conversation_id: ConversationId,
    principal: Principal = Depends(chat_ai), platform: PlatformDep,
):
    async def produce():
        return 202, await conversations.call(platform, principal.user_id, conversation_id, "POST", "/messages", {"prompt": body.prompt})

    # With an Idempotency-Key, a retried prompt (say, after a dropped connection) starts no second turn.
    return await respond_once(request, platform, principal.user_id, produce)


@router.get("/v1/conversations/{conversation_id}/opencode-messages", response_model=OpencodeMessages, summary="Message parts (text, tool) by message id")
async def opencode_messages(*, conversation_id: ConversationId, principal: Principal = Depends(chat), platform: PlatformDep):
    return await conversations.call(platform, principal.user_id, conversation_id, "GET", "/opencode-messages")




@router.post(
    "/v1/conversations/{conversation_id}/opencode-questions/{request_id}/reply", response_model=Success,
    responses=problem_responses(409), summary="Answer a pending question; the waiting turn resumes",
)
async def reply_question(
    *,
    body: QuestionReply, conversation_id: ConversationId, request_id: RequestId,
    principal: Principal = Depends(chat), platform: PlatformDep,
):
    return await conversations.call(platform, principal.user_id, conversation_id, "POST", f"/questions/{request_id}/reply", {"answers": body.answers})


@router.post(
    "/v1/conversations/{conversation_id}/opencode-questions/{request_id}/reject", response_model=Success,
    responses=problem_responses(409), summary="Decline a pending question; the waiting turn resumes without an answer",
)
async def reject_question(
    *,
    conversation_id: ConversationId, request_id: RequestId,
    principal: Principal = Depends(chat), platform: PlatformDep,
):
    return await conversations.call(platform, principal.user_id, conversation_id, "POST", f"/questions/{request_id}/reject", {})


@router.post(
    "/v1/conversations/{conversation_id}/abort", response_model=TurnAborted, responses=problem_responses(409, 503),
    summary="Stop the running turn (it ends with turn.failed cancelled)",
)
async def abort(*, conversation_id: ConversationId, principal: Principal = Depends(chat), platform: PlatformDep):
    return await conversations.call(platform, principal.user_id, conversation_id, "POST", "/abort", {})


@router.post("/v1/conversations/{conversation_id}/clear", response_model=Cleared, responses=problem_responses(409), summary="Clear the messages")
async def clear(*, conversation_id: ConversationId, principal: Principal = Depends(chat), platform: PlatformDep):
    return await conversations.call(platform, principal.user_id, conversation_id, "POST", "/clear", {})


@router.get("/v1/conversations/{conversation_id}/timeline", response_model=Timeline, summary="The event log without streamed deltas")
async def timeline(*, conversation_id: ConversationId, principal: Principal = Depends(chat), platform: PlatformDep):
    return await conversations.call(platform, principal.user_id, conversation_id, "GET", "/timeline")


@router.get("/v1/conversations/{conversation_id}/project-info", response_model=ProjectInfo, summary="Project, workspace and working-tree state")
async def project_info(*, conversation_id: ConversationId, principal: Principal = Depends(chat), platform: PlatformDep):
    return await conversations.project_info(platform, principal.user_id, conversation_id)


@router.get("/v1/conversations/{conversation_id}/deployments", response_model=DeploymentList, summary="Deployments made from this conversation")
async def deployments(*, conversation_id: ConversationId, principal: Principal = Depends(chat), platform: PlatformDep):
    return await conversation_deploys.list_for(platform, principal.user_id, conversation_id)


@router.get("/v1/conversations/{conversation_id}/deployments/{deployment_id}/logs", response_model=DeploymentLogs, summary="A deployment's logs")
async def deployment_logs(
    *,
    conversation_id: ConversationId, deployment_id: str = Path(..., max_length=64),
    principal: Principal = Depends(chat), platform: PlatformDep,
):
    return await conversation_deploys.logs(platform, principal.user_id, conversation_id, deployment_id)


@router.post(
    "/v1/conversations/{conversation_id}/snapshot", response_model=ConversationSnapshot, status_code=201,
    responses=problem_responses(409), summary="Freeze the conversation's working tree into a snapshot",
)
async def snapshot(
    *,
    request: Request,
    body: ConversationSnapshotCreate | None = None,
    conversation_id: ConversationId,
    principal: Principal = Depends(chat),
    platform: PlatformDep,
):
    async def produce():
        generate = bool(body and body.generate_summary)
        return 201, await conversations.snapshot(platform, principal.user_id, conversation_id, generate_summary=generate)

    return await respond_once(request, platform, principal.user_id, produce)


# --------------------------------------------------------------------------------------------------
# Live streams (local runtime: attached to the in-process session object)
# --------------------------------------------------------------------------------------------------


class _QueuedClient:
    """A client of the session object: `send` queues (never blocks the turn); a writer drains it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue()
        self.grant: dict[str, Any] | None = None  # set by the session object (conversations.streams)

    def send(self, text: str) -> None:
        self.queue.put_nowait(text)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.queue.put_nowait((code, reason))


def _session_object(platform: Platform, conversation_id: str) -> Any:
    instance = getattr(platform.sessions, "instance", None)
    if instance is None:  # on Cloudflare the Worker forwards streams to the Durable Object
        raise Unavailable("Streams are served by the session object on this runtime.")
    return instance(conversation_id)


@router.websocket("/v1/conversations/{conversation_id}/stream")
async def stream(websocket: WebSocket, conversation_id: str):
    """`?token=` (or a bearer header), `?since=<event id>`. Closes 4401 on a bad token, 4404 on an
    unknown (or another user's) conversation; the close comes after the handshake, so browsers see
    the code."""
    platform: Platform = websocket.scope["state"]["platform"]
    await websocket.accept()
    try:
        opened = await conversations.open_stream(platform, conversation_id, websocket.query_params, websocket.headers)
        session = _session_object(platform, conversation_id)
    except ApiError as error:
        await websocket.close(code=conversations.stream_close_code(error.status), reason=error.code)
        return
    client = _QueuedClient()

    async def write() -> None:
        while True:
            item = await client.queue.get()
            if isinstance(item, tuple):
                await websocket.close(code=item[0], reason=item[1])
                return
            await websocket.send_text(item)

    writer = asyncio.create_task(write())
    try:
        await session.attach(client, opened.since, opened.grant())
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"]
            if text is not None:
                await session.receive(client, text)
    except WebSocketDisconnect:
        pass
    finally:
        session.detach(client)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


@router.get("/v1/conversations/{conversation_id}/events", include_in_schema=False)
async def events(request: Request, conversation_id: str, platform: PlatformDep):
    """Server-sent events: the stream's frames as `id:`/`event:`/`data:` records. A bearer header or
    `?token=` (an EventSource cannot send headers); `Last-Event-ID` (sent by EventSource on
    reconnect) or `?since=` replays what was missed. (Not in the OpenAPI document: it never ends.)
    The records are framed by the session object's `EventStream`, as on the Durable Object."""
    from durable_objects.session.sse import (
        EVENT_STREAM_HEADERS,
        SSE_KEEPALIVE_SECONDS,
        EventStream,
    )

    def report(decision: RateDecision) -> None:  # the RateLimit headers, as `deps.authorize` reports them
        request.state.rate_limit = ("default", decision)

    opened = await conversations.open_stream(platform, conversation_id, request.query_params, request.headers, on_rate_decision=report)
    session = _session_object(platform, conversation_id)
    records: asyncio.Queue[str | None] = asyncio.Queue()
    client = EventStream(records.put_nowait, lambda: records.put_nowait(None))

    async def body() -> AsyncIterator[bytes]:
        await session.attach(client, opened.since, opened.grant())
        try:
            while True:
                try:
                    record = await asyncio.wait_for(records.get(), SSE_KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    client.keepalive()
                    continue
                if record is None:
                    return
                yield record.encode()
        finally:
            session.detach(client)

    return StreamingResponse(body(), headers=EVENT_STREAM_HEADERS)
