"""Which capability reacts to which event: the one list of reactions (see `events.reactions`).

It sits at the top of the services layer because it names the reacting capabilities; the writers
below never import it. Whoever composes a platform hands it over (`Platform(reactions=ALL)`): the
local runtime's `durable_objects.local.open_platform`, and the Worker's entry and Durable Object.
"""

from __future__ import annotations

from fastest.services import deployments, events, webhooks

ALL: tuple[events.Reaction, ...] = (
    # Integration webhooks: every event whose type is in the catalogue queues its messages in its own batch.
    events.Reaction(on=None, in_batch=webhooks.queue_messages),
    # Auto-deploy: a main workspace that moved deploys when its settings say so.
    events.Reaction(on=events.WORKSPACE_MOVED, afterwards=deployments.auto_deploy),
)
