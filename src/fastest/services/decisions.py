"""Decisions (ADR-like records) extracted from a project's conversations, linked to the Atlas."""

from __future__ import annotations

from fastest.platform import Platform


async def link_all(platform: Platform, project_id: str) -> int:
    return 0
