"""The `HttpClient` port on the local runtime: httpx, one connection pool per process."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import OrderedDict
from typing import Mapping
from urllib.parse import urlsplit

import httpx

from fastest.ports import HttpResponse, HttpStream


PINNED_POOLS = 128  # origins with a pool of their own (webhook endpoints), least recently used dropped


class HttpxClient:
    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._loop: object = None
        self._pinned: OrderedDict[str, httpx.AsyncClient] = OrderedDict()

    def _pool(self) -> httpx.AsyncClient:
        # A pool belongs to the event loop it was made in: made on first use in each loop (the
        # server has one; tests may run several in turn).
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
            self._pinned = OrderedDict()
            self._loop = loop
        return self._client

    def _pinned_pool(self, origin: str) -> httpx.AsyncClient:
        """A pool per pinned origin: httpcore looks over every connection of a pool on each request,
        so one shared pool serving many endpoints at once spends its time scanning."""
        self._pool()
        client = self._pinned.pop(origin, None)
        if client is None:
            client = httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                       limits=httpx.Limits(max_connections=32, max_keepalive_connections=8))
        self._pinned[origin] = client
        while len(self._pinned) > PINNED_POOLS:
            _, evicted = self._pinned.popitem(last=False)
            asyncio.get_running_loop().create_task(evicted.aclose())
        return client

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
        headers = dict(headers or {})
        extensions: dict[str, object] = {}
        pool = self._pool()
        if pin is not None:
            parsed = urlsplit(url)
            pool = self._pinned_pool(f"{parsed.scheme}|{pin}|{parsed.port}|{parsed.hostname}")
            url, headers, extensions = _pinned(url, headers, pin)
        request = pool.build_request(method, url, headers=headers, content=body, timeout=timeout, extensions=extensions)
        response = await pool.send(request, stream=True)
        return HttpStream(status=response.status_code, headers=_headers(response), chunks=response.aiter_bytes(),
                          close=response.aclose)


    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _pinned(url: str, headers: dict[str, str], address: str) -> tuple[str, dict[str, str], dict[str, object]]:
    """The request sent to `address` while naming the URL's host: in the Host header and, for
    HTTPS, as the TLS server name (SNI and certificate check)."""
    parsed = httpx.URL(url)
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    netloc_host = f"[{ip}]" if ip.version == 6 else str(ip)
    headers.setdefault("host", parsed.netloc.decode("ascii"))
    extensions: dict[str, object] = {}
    if parsed.scheme == "https":
        extensions["sni_hostname"] = parsed.host
    return str(parsed.copy_with(host=netloc_host.strip("[]"))), headers, extensions


def _headers(response: httpx.Response) -> dict[str, str]:
    """Lower-case names, as the Workers adapter gives them."""
    return {name.lower(): value for name, value in response.headers.items()}
