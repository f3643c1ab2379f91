"""The Cloudflare face of ConversationSession: a `DurableObject` around the platform-neutral core.

All the behaviour is in `durable_objects.conversation_session.ConversationSession`; this wrapper only
translates a JS Request into a `SessionRequest`, hands the core a `SessionStorage` over `ctx.storage`,
the isolate's `Platform` (D1, R2, the model) and the hibernatable WebSockets, and turns the
`SessionResponse` back into a JS Response. The conversions live in
`fastest.platform.cloudflare.durable_objects`, where they are unit-tested with fakes.

Server-sent events (`GET …/events`, forwarded by the Worker) are a streaming Response the core
writes records into (`_event_stream`); the object stays awake while one is open.

WebSockets use the hibernation API: `ctx.acceptWebSocket(server)` hands the socket to the runtime,
which calls `webSocketMessage` / `webSocketClose` / `webSocketError` (on a fresh instance if the
object hibernated meanwhile); the core's socket set is `ctx.getWebSockets()`.
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
            from fastest.edge.worker_platform import worker_platform
            from fastest.platform.cloudflare.durable_objects import (
                DurableObjectStorage,
                HibernatableSockets,
                background,
                object_name,
            )

            platform = worker_platform(self.env)
            self._core = Core(
                object_name(self.ctx), DurableObjectStorage(self.ctx.storage), platform=platform,
                sockets=HibernatableSockets(self.ctx), spawn=background(self.ctx),
            )
        return self._core

    def _invocation(self):
        """The context each event of the object runs in: work its code defers (the webhooks of the
        events a turn records) is handed to this object's `ctx.waitUntil`, as the Worker's is to its
        request's, not left to the cron."""
        from fastest.platform.cloudflare.background import invocation

        return invocation(self.ctx)

    async def fetch(self, request):
        with self._invocation():
            return await self._fetch(request)

    async def _fetch(self, request):
        from fastest.edge.conversation_streams import grant_of, since_of
        from fastest.platform.cloudflare.durable_objects import (
            accept_websocket,
            read_session_request,
            to_js_response,
            wants_event_stream,
            wants_websocket,
        )

        # The Worker opened these streams (token, ownership, since) before forwarding them here,
        # with the grant that closes them when their token expires or is revoked.
        if wants_websocket(request):
            client, socket = accept_websocket(self.ctx)
            await self._session().attach(socket, since_of(request), grant_of(request))
            return socket.upgrade_response(client)
        if wants_event_stream(request):
            return await self._event_stream(since_of(request), grant_of(request))
        response = await self._session().fetch(await read_session_request(request))
        return to_js_response(response)

    async def _event_stream(self, since, grant):
        """SSE: the core writes the replay after `since`, then live events, as records into a
        TransformStream whose readable side is the response body; it keeps the stream alive and
        lets it go when the client does."""
        from durable_objects.session.sse import EVENT_STREAM_HEADERS, EventStream
        from fastest.platform.cloudflare.durable_objects import JsEventSink, background

        sink = JsEventSink()
        stream = EventStream(sink.write, sink.end)
        await self._session().attach(stream, since, grant)
        background(self.ctx)(self._session().hold(stream, sink.disconnected()))
        return sink.response(EVENT_STREAM_HEADERS)

    async def alarm(self, *alarm_info):
        """The object's alarm is due (`ctx.storage.setAlarm`): the core carries on its background
        work (an action-item run). Raising makes the runtime retry it with backoff."""
        with self._invocation():
            await self._session().alarm()

    async def webSocketMessage(self, ws, message):
        from fastest.platform.cloudflare.durable_objects import JsSocket

        with self._invocation():
            await self._session().receive(JsSocket(ws), message)

    async def webSocketClose(self, ws, code, reason, was_clean):
        from fastest.platform.cloudflare.durable_objects import JsSocket

        self._session().detach(JsSocket(ws))
        JsSocket(ws).close(1000, "closing")

    async def webSocketError(self, ws, error):
        from fastest.platform.cloudflare.durable_objects import JsSocket

        self._session().detach(JsSocket(ws))
