"""jinja2 templates (HTML pages and AI prompts), loaded from this package, autoescaped."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Built on first use, not at import: the Worker imports this module on every cold start.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("fastest", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context: Any) -> str:
    return _environment().get_template(name).render(**context)
