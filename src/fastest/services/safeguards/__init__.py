"""Request safeguards the HTTP layer applies: per-user rate limits and idempotency keys.

Modules: `rate_limits` (per-user request budgets and their headers); `idempotency` (stored responses
of `Idempotency-Key` requests).
"""
