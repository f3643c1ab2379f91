"""The Cloudflare face of ConversationSession: a `DurableObject` around the platform-neutral core.

All the behaviour is in `durable_objects.conversation_session.ConversationSession`; this wrapper only
translates a JS Request into a `SessionRequest`, hands the core a `SessionStorage` over `ctx.storage`,
and turns the `SessionResponse` back into a JS Response. The conversions live in
`fastest.platform.cloudflare.durable_objects`, where they are unit-tested with fakes.
"""

from __future__ import annotations

from workers import DurableObject


class ConversationSession(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self._core = None  # built on first use: one core per object instance

    def _session(self):
        if self._core is None:
            from durable_objects.conversation_session import ConversationSession as Core
            from fastest.platform.cloudflare.durable_objects import DurableObjectStorage, object_name

            self._core = Core(object_name(self.ctx), DurableObjectStorage(self.ctx.storage))
        return self._core

    async def fetch(self, request):
        from fastest.platform.cloudflare.durable_objects import read_session_request, to_js_response

        response = await self._session().fetch(await read_session_request(request))
        return to_js_response(response)
