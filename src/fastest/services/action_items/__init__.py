"""Action items: findings a user can act on, and the background agent runs that fix them.

Modules: `items` (analysing workspaces into findings, listing and dismissing them); `runs`
(background fix runs and applying their result).

Callers use the names re-exported here (`action_items.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.action_items import runs`).
"""

from __future__ import annotations

from fastest.services.action_items.items import (
    dismiss,
    get_item,
    list_items,
    refresh_job,
)
from fastest.services.action_items.runs import agent_available
