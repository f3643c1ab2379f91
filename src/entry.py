"""The Cloudflare Worker entry: HTTP through the ASGI bridge, cron jobs, and the Durable Object class.

Deliberately thin. Everything interesting lives in `fastest` (the same app the local server runs);
this module only connects Cloudflare's handlers to it. Import time does no work beyond imports (no
randomness is allowed at global scope on Python Workers): the app is built on the first request and
kept for the life of the isolate.
"""

from __future__ import annotations

import functools

from workers import WorkerEntrypoint

# The Durable Object class must be exported by the main module under the name wrangler.toml binds.
# It lives in the top-level durable_objects/ package, vendored into python_modules/ at build time.
from durable_objects.cloudflare import ConversationSession

__all__ = ["ConversationSession", "Default"]


@functools.cache
def _asgi_app():
    """The FastAPI app, built once per isolate (a one-entry cache, hence bounded)."""
    from fastest.app import create_app
    from fastest.edge.worker_platform import platform_for_scope

    return create_app(platform_for_scope)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        from urllib.parse import urlsplit

        from fastest.edge import blob_stream
        from fastest.edge.conversation_streams import forward_stream
        from fastest.edge.worker_platform import worker_platform
        from fastest.platform.cloudflare.durable_objects import match_stream

        path = urlsplit(str(request.url)).path
        # The method as it arrived: the SDK's `request.method` maps it through Python's HTTPMethod,
        # which raises for any other method a client may send (QUERY, PURGE…), a 500 where the app
        # answers 405.
        method = str(request.js_object.method)
        # A conversation's live streams terminate in its Durable Object: the WebSocket (hibernation
        # API), which the ASGI bridge cannot hand a socket to, and SSE, which never ends (the
        # bridge buffers bodies). Open them here and forward them.
        live = match_stream(method, path)
        if live is not None:
            return await forward_stream(*live, request, worker_platform(self.env))
        # Blob bodies bypass the ASGI bridge (which buffers whole request bodies): JS streams go
        # straight between the client and R2 (DESIGN.md §3).
        matched = blob_stream.match(method, path)
        if matched is not None:
            return await blob_stream.handle(*matched, request, worker_platform(self.env))

        from workers import asgi

        from fastest.platform.cloudflare.background import invocation

        with invocation(getattr(self, "ctx", None)):
            # The JS request, for the same reason: the bridge then reads its method as a string.
            return await asgi.fetch(_asgi_app(), request.js_object, self.env)

    async def scheduled(self, controller, env=None, ctx=None):
        """A cron trigger fired: run the jobs due for that cron string (see wrangler.toml)."""
        from fastest.edge.worker_platform import worker_platform
        from fastest.platform.cloudflare.background import invocation
        from fastest.services.operations.jobs import run_due

        # self.env is the SDK-wrapped env (bindings return Python values); prefer it to the raw one.
        with invocation(ctx if ctx is not None else getattr(self, "ctx", None)):
            await run_due(worker_platform(self.env), str(controller.cron))
