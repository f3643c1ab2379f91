"""Integration webhooks: endpoints a user registers and the signed deliveries of project events to
them.

Modules: `endpoints` (endpoint management and the deliveries log), `delivery` (sending: first
attempts, retries, tests and redeliveries), `senders` (what the senders of one platform share),
`outbox` (the event catalogue and the transactional outbox).

Callers use the names re-exported here (`webhooks.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.webhooks import outbox`).
"""

from __future__ import annotations

from fastest.services.webhooks.delivery import EXCERPT_BYTES, queue_messages, redeliver, send_test, sweep
from fastest.services.webhooks.endpoints import (
    create_endpoint,
    delete_endpoint,
    deliveries_page,
    list_endpoints,
    loopback_http_allowed,
    rotate_secret,
    update_endpoint,
)
