"""The local face of `ConversationSession`: the local runtime hosting it (`durable_objects.cloudflare`
is the Cloudflare face).

On Cloudflare, wrangler.toml binds the `CONVERSATIONS` namespace to the class `src/entry.py` exports.
Locally, whoever opens the platform says which class its session namespace hosts: `open_platform`
is that choice, made once, for the server, the CLI's commands and the tests. The platform itself
(`fastest.platform.local`) implements the ports and knows nothing of the application above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from durable_objects.conversation_session import ConversationSession
from fastest.config import Settings
from fastest.platform import Platform
from fastest.platform.local import open_local_platform
from fastest.services import subscriptions

__all__ = ["open_platform"]


def open_platform(data_dir: Path, settings: Settings, **options: Any) -> Platform:
    """`open_local_platform` composed with the application: conversations hosted by
    `ConversationSession`, and the reactions to recorded events (same options)."""
    return open_local_platform(data_dir, settings, session_class=ConversationSession,
                               reactions=subscriptions.ALL, **options)
