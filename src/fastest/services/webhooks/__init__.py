"""Integration webhooks: endpoints a user registers and the signed deliveries of project events to
them.

Modules: `endpoints` (endpoint management and the delivery engine); `outbox` (the event catalogue
and the transactional outbox).

Callers use the names re-exported here (`webhooks.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.webhooks import outbox`).
"""

from __future__ import annotations

from fastest.services.webhooks.endpoints import (
    EXCERPT_BYTES,
    create_endpoint,
    delete_endpoint,
    deliveries_page,
    list_endpoints,
    loopback_http_allowed,
    queue_messages,
    redeliver,
    rotate_secret,
    send_test,
    sweep,
    update_endpoint,
)
