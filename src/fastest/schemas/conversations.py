"""Conversations: requests and responses. Message and event payloads are the session
object's own JSON and are documented loosely (objects with extra members)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from fastest.schemas.common import Name, RequestModel, ResponseModel

WorkspaceRef = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Answer = Annotated[str, StringConstraints(max_length=4096)]


class ConversationCreate(RequestModel):
    workspace_id: WorkspaceRef
    title: Name | None = None


class ConversationUpdate(RequestModel):
    title: Name | None = None
    workspace_id: WorkspaceRef | None = None


class PromptCreate(RequestModel):
    # The byte limit (FASTEST_CONVERSATION_MAX_PROMPT_BYTES) is checked by the session: 413.
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)]


class QuestionReply(RequestModel):
    answers: Annotated[list[Annotated[list[Answer], Field(max_length=50)]], Field(max_length=50)]


class ConversationSnapshotCreate(RequestModel):
    generate_summary: bool = False


class Conversation(ResponseModel):
    id: str
    workspace_id: str
    title: str | None
    workspace_name: str
    project_id: str
    project_name: str
    created_at: str
    updated_at: str


class ConversationResponse(ResponseModel):
    conversation: Conversation


class ConversationList(ResponseModel):
    conversations: list[Conversation]
    next_cursor: str | None


class Message(ResponseModel):
    id: str
    role: str = Field(description="`user`, `assistant` (may carry `tool_calls`) or `tool` (a tool's result).")
    content: str
    created_at: str


class MessageList(ResponseModel):
    messages: list[Message]
    has_more: bool


class PromptAccepted(ResponseModel):
    message: Message
    turn_id: str = Field(description="Follow the turn on the stream (WebSocket or SSE) until `turn.completed`.")


class OpencodeMessages(ResponseModel):
    messages: dict[str, list[dict[str, Any]]]


class Event(ResponseModel):
    type: str
    id: int
    data: dict[str, Any]


class Timeline(ResponseModel):
    timeline: list[Event]


class Cleared(ResponseModel):
    success: bool
    cleared: int


class TurnAborted(ResponseModel):
    success: bool
    turn_id: str | None = Field(description="The turn that stops; it ends with `turn.failed` `cancelled` on the stream.")


class ProjectInfo(ResponseModel):
    project_info: dict[str, Any]


class DeploymentList(ResponseModel):
    deployments: list[dict[str, Any]]


class DeploymentLogs(ResponseModel):
    logs: list[Any]


class ConversationSnapshot(ResponseModel):
    snapshot_id: str
    manifest_hash: str
    was_dirty: bool
    summary: str | None
