"""HTTP layer: one router module per route group, plus errors, middleware and dependencies."""
