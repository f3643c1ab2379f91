"""The app in process (or the Worker on the edge harness) as an httpx transport for the CLI's `ApiClient` (which takes any httpx
transport in tests).

Starlette's `TestClient` holds one (`client._transport`), but it speaks whichever HTTP library
Starlette picked: httpx2 when installed (Starlette ≥ 1.10 prefers it, and huggingface_hub, under
the local embedding model, installs it), whose requests and streams a plain `httpx.Client` cannot
exchange. This translates each request and answer between the two, keeping answers streamed."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import starlette.testclient


class _Chunks(httpx.SyncByteStream):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self.inner

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class AppTransport(httpx.BaseTransport):
    def __init__(self, client: Any) -> None:
        self.inner = client._transport
        # The module Starlette's transport speaks; on the edge runtime the client is a plain
        # httpx.Client to the Worker, whose transport speaks httpx.
        self.library = httpx if isinstance(client, httpx.Client) else starlette.testclient.httpx
        self.stamp = getattr(client, "stamp", None)  # the edge client's: the test's clock on each request

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.stamp is not None:
            self.stamp(request)
        sent = self.library.Request(request.method, str(request.url), headers=request.headers.raw, content=request.read())
        answer = self.inner.handle_request(sent)
        return httpx.Response(answer.status_code, headers=answer.headers.raw, stream=_Chunks(answer.stream), request=request)
