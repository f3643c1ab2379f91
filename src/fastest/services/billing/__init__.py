"""Plans and payment: Paddle checkouts and webhooks, subscriptions, and what a plan entitles a user
to.

Modules: `subscriptions` (checkouts, the Paddle webhook and subscription state); `paddle` (the
Paddle API client); `entitlements` (plan limits checked before a write).

Callers use the names re-exported here (`billing.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.billing import paddle`).
"""

from __future__ import annotations

from fastest.services.billing.subscriptions import (
    checkout_anonymous,
    checkout_for_user,
    checkout_status,
    forget_expired_idempotency_keys,
    plans_view,
    receive_webhook,
    reconcile_subscriptions,
    subscription_view,
)
