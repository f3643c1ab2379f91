"""Conversations with the coding agent: their records, the calls into their session objects, deploys
from them.

Modules: `registry` (conversation records and the calls to their session object); `turn_events`
(project events of finished turns); `deploys` (deploying a conversation's tree); `working_tree` (a
conversation's edits over its base manifest); `checkout` (the working tree on disk for an agent that
edits files itself, OpenCode); `streams` (live streams end with their token).

Callers use the names re-exported here (`conversations.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.conversations import turn_events`).
"""

from __future__ import annotations

from fastest.services.conversations.registry import (
    auto_title,
    call,
    conversation_view,
    create,
    get_owned,
    list_page,
    open_stream,
    project_info,
    snapshot,
    stream_close_code,
    stream_since,
    stream_token,
    update,
)
from fastest.services.conversations.streams import OpenedStream, close_token_streams, grant_of
