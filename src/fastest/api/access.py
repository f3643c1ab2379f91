"""Who may call each route, written into `/openapi.json`.

`authorize(ability, fresh=…)` (api/deps.py) marks the dependency it returns; this walks each
route's dependency tree, finds that mark and sets `x-fastest-ability` (and `x-fastest-fresh`) on the
route's operations, with the bearer token's `security` requirement (`authorize` reads the header
itself, so FastAPI does not see the scheme). Routes without a bearer token carry `x-fastest-public` from `public("why")`.
Clients and the authorization matrix test read these instead of a hand-kept list.
"""

from __future__ import annotations

from typing import Any, Iterator

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from fastest.api.deps import ABILITY_EXTENSION, FRESH_EXTENSION, bearer_security_scheme


def route_ability(dependant: Dependant) -> tuple[str, bool] | None:
    """(ability, fresh) of the first `authorize(...)` dependency in the tree, or None."""
    stack = [dependant]
    while stack:
        current = stack.pop()
        ability = getattr(current.call, "fastest_ability", None)
        if isinstance(ability, str):
            return ability, bool(getattr(current.call, "fastest_fresh", False))
        stack.extend(reversed(current.dependencies))
    return None


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's API routes with the paths they are served at. FastAPI ≥ 0.165 keeps included
    routers as a tree (`iter_route_contexts` flattens it); older versions list the routes flat."""
    iterate = getattr(routing, "iter_route_contexts", None)
    if iterate is None:  # pragma: no cover - FastAPI < 0.165
        yield from (route for route in app.routes if isinstance(route, APIRoute))
        return
    for context in iterate(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def annotate(app: FastAPI, schema: dict[str, Any]) -> None:
    paths = schema.get("paths", {})
    scheme_name, scheme = bearer_security_scheme()
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[scheme_name] = scheme
    for route in _api_routes(app):
        if not route.include_in_schema:
            continue
        found = route_ability(route.dependant)
        if found is None:
            continue
        ability, fresh = found
        for method in route.methods:
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            operation[ABILITY_EXTENSION] = ability
            requirements = operation.setdefault("security", [])
            if {scheme_name: []} not in requirements:
                requirements.append({scheme_name: []})
            if fresh:
                operation[FRESH_EXTENSION] = True
