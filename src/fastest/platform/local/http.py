"""The `HttpClient` port on the local runtime: httpx, one connection pool per process."""

from __future__ import annotations

import asyncio
import socket
from typing import Mapping

import httpx

from fastest.platform.local.pinned_http import PinnedHttp
from fastest.ports import HttpResponse, HttpStream


class HttpxClient:
    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._loop: object = None
        self._pinned = PinnedHttp()

    def _pool(self) -> httpx.AsyncClient:
        # A pool belongs to the event loop it was made in: made on first use in each loop (the
        # server has one; tests may run several in turn).
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
            self._pinned = PinnedHttp()
            self._loop = loop
        return self._client

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
    ) -> HttpResponse:
        response = await self._pool().request(method, url, headers=dict(headers or {}), content=body, timeout=timeout)
        return HttpResponse(status=response.status_code, headers=_headers(response), body=response.content)

    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
        pin: str | None = None,
    ) -> HttpStream:
        pool = self._pool()
        if pin is not None:  # to the checked address (integration webhooks): see pinned_http
            return await self._pinned.stream(method, url, dict(headers or {}), body or b"", timeout, pin)
        request = pool.build_request(method, url, headers=dict(headers or {}), content=body, timeout=timeout)
        response = await pool.send(request, stream=True)
        return HttpStream(status=response.status_code, headers=_headers(response), chunks=response.aiter_bytes(),
                          close=response.aclose)


    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _headers(response: httpx.Response) -> dict[str, str]:
    """Lower-case names, as the Workers adapter gives them."""
    return {name.lower(): value for name, value in response.headers.items()}
