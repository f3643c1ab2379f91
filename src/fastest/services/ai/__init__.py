"""AI work on a user's behalf: which model answers, and the plan's AI budget it spends.

Modules: `models` (the model for a user (their own key or the server's)); `ai_budget` (the per-user
AI budget a plan allows).
"""
