"""The `HttpClient` port on Workers: the runtime's `fetch`, with an AbortSignal timeout.

A streamed body is read chunk by chunk from `response.body.getReader()` (each `read()` bounded by
the timeout), so a model's server-sent events reach the conversation as they arrive.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Mapping

from fastest.platform.cloudflare.interop import field, from_js, to_bytes
from fastest.ports import HttpResponse, HttpStream


def _headers(js_headers: Any) -> dict[str, str]:
    entries = from_js(js_headers.entries()) if hasattr(js_headers, "entries") else []
    return {str(k).lower(): str(v) for k, v in (entries or [])}


async def _fetch(method: str, url: str, headers: Mapping[str, str] | None, body: bytes | None, timeout: float) -> Any:
    from js import AbortSignal, Object, fetch  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    options: dict[str, Any] = {"method": method, "headers": dict(headers or {})}
    if body is not None:
        options["body"] = to_js(body)
    options["signal"] = AbortSignal.timeout(int(timeout * 1000))
    return await fetch(url, to_js(options, dict_converter=Object.fromEntries))


class WorkersFetchClient:
    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None, timeout: float = 10.0
    ) -> HttpResponse:
        response = await _fetch(method, url, headers, body, timeout)
        data = to_bytes(await response.arrayBuffer())
        return HttpResponse(status=int(field(response, "status")), headers=_headers(field(response, "headers")), body=data)

    async def stream(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None, timeout: float = 10.0
    ) -> HttpStream:
        # The fetch's own AbortSignal would cut a long stream; chunks are bounded one by one below.
        response = await _fetch(method, url, headers, body, max(timeout, 3600.0))
        reader = response.body.getReader()

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                result = await asyncio.wait_for(reader.read(), timeout)
                if field(result, "done"):
                    return
                yield to_bytes(field(result, "value"))

        async def close() -> None:
            try:
                await reader.cancel()
            except Exception:
                pass

        return HttpStream(status=int(field(response, "status")), headers=_headers(field(response, "headers")), chunks=chunks(), close=close)
