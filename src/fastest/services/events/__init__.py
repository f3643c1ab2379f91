"""The project activity log, and the seam through which other capabilities react to what happened.

Modules: `activity` (recording events in the writer's batch, and reading them back); `reactions` (who
reacts to which event: in the event's batch, or after it committed).

Callers use the names re-exported here (`events.record(...)`, `events.after_commit(...)`).
"""

from __future__ import annotations

from fastest.services.events.activity import event_view, page, record
from fastest.services.events.reactions import (
    WORKSPACE_MOVED,
    Event,
    Reaction,
    after_commit,
)
