"""The seam between a capability that records what happened and the capabilities that react to it.

A writer records a project event in the batch that makes its change (`activity.record`); when a
workspace's head moves it also announces that once the batch has committed (`after_commit`). It
does not know who reacts: the reactions are listed once, at the top of the services layer
(`fastest.services.subscriptions`), and handed to the platform by whoever composes it
(`Platform.reactions`). So lower capabilities (snapshots, sync) never import higher ones
(webhooks, deployments), and a new reaction is one line in that list.

Two moments, because they have different guarantees:
- `in_batch`: statements added to the event's own batch — they commit with it or not at all (the
  webhook outbox);
- `afterwards`: work once the batch committed, awaited by the writer (auto-deploy); a failure there
  is the reaction's to report, never the writer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from fastest.platform import Platform
from fastest.ports import Statement

# Announced after the batch that moved a workspace's head committed: a new snapshot, a restore, a sync.
WORKSPACE_MOVED = "workspace.moved"


@dataclass(frozen=True, slots=True)
class Event:
    """A project event as recorded (`in_batch`), or an announcement after a commit (`afterwards`)."""

    type: str
    project_id: str
    actor: str
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    summary: str = ""
    created_at: str = ""


@dataclass(frozen=True, slots=True)
class Reaction:
    """What one capability does when an event of type `on` happens (`on=None`: every event)."""

    on: str | None
    in_batch: Callable[[Platform, Event], list[Statement]] | None = None
    afterwards: Callable[[Platform, Event], Awaitable[None]] | None = None

    def wants(self, event_type: str) -> bool:
        return self.on is None or self.on == event_type


def in_batch(platform: Platform, event: Event) -> list[Statement]:
    """The statements every interested reaction adds to the event's batch."""
    statements: list[Statement] = []
    for reaction in platform.reactions:
        if reaction.in_batch is not None and reaction.wants(event.type):
            statements += reaction.in_batch(platform, event)
    return statements


async def after_commit(platform: Platform, event: Event) -> None:
    """Run every interested reaction's `afterwards`, in the order they are listed."""
    for reaction in platform.reactions:
        if reaction.afterwards is not None and reaction.wants(event.type):
            await reaction.afterwards(platform, event)
