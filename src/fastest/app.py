"""`create_app(platform_provider)` → the FastAPI application both runtimes serve.

The app holds no platform of its own: `platform_provider(scope)` returns it per request (locally the
one process-wide platform; on Workers the isolate's platform built from `scope["env"]`). Nothing
here runs at import time, and no start-up work happens in lifespan, which the Workers ASGI bridge
runs on every request.
"""

from __future__ import annotations

from typing import Callable

from fastapi import FastAPI
from starlette.types import Scope

from fastest.api import (
    audit, auth, blobs, conversations, device_page, docs, env_vars, errors, health, oauth, project_docs, projects,
    snapshots, sync, workspaces,
)
from fastest.api import atlas, intelligence
from fastest.api import webhooks as integration_webhooks
from fastest.api import infrastructure
from fastest.api import access
from fastest.api import billing as billing_api
from fastest.api import action_items as action_items_api
from fastest.api.cors import CorsMiddleware
from fastest.api.middleware import RequestContextMiddleware
from fastest.platform import Platform

API_VERSION = "1.0.0"

DESCRIPTION = """\
Sync folders into content-addressed snapshots, see drift between workspaces, merge a workspace into
main, chat with a coding agent and deploy. Errors are `application/problem+json` with a stable
`error.code`; every response carries `X-Request-Id`.
"""


def create_app(platform_provider: Callable[[Scope], Platform]) -> FastAPI:
    app = FastAPI(
        title="Fastest API",
        version=API_VERSION,
        description=DESCRIPTION,
        docs_url=None,  # our own /docs page: Swagger UI would load scripts from a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    errors.install(app)
    # Added last = outermost: the request context (platform, request id) exists before CORS runs.
    app.add_middleware(CorsMiddleware)
    app.add_middleware(RequestContextMiddleware, platform_provider=platform_provider)
    for router in (
        health.router, docs.router, projects.router, env_vars.router, workspaces.router, snapshots.router,
        project_docs.router, blobs.router, sync.router, conversations.router, auth.router, oauth.router,
        device_page.router, audit.router, atlas.router, intelligence.router, integration_webhooks.router,
        infrastructure.router,
    ):
        app.include_router(router)
    app.include_router(billing_api.router)
    app.include_router(action_items_api.router)
    app.openapi = _problem_aware_openapi(app)  # type: ignore[method-assign]
    return app


def _problem_aware_openapi(app: FastAPI) -> Callable[[], dict]:
    """FastAPI documents every response schema under `application/json`, and its own 422 body; our
    errors are `application/problem+json` problems, so the document says so."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        schema_ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                        if schema_ref.endswith("/OAuthError"):
                            continue  # the device flow's token route answers in OAuth's own shape
                        if status[:1] in ("4", "5") and "application/json" in content:
                            content["application/problem+json"] = content.pop("application/json")
                        problem = content.get("application/problem+json", {})
                        if problem.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                            # FastAPI's default 422 body is not what our error handler sends.
                            problem["schema"] = {"$ref": "#/components/schemas/Problem"}
            access.annotate(app, schema)  # x-fastest-ability / x-fastest-fresh from authorize(...)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi
