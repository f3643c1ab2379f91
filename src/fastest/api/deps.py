"""FastAPI dependencies: the platform, the authenticated caller, pagination parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Awaitable, Callable

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fastest.domain.pagination import InvalidCursor, decode_cursor
from fastest.errors import ValidationFailed
from fastest.platform import Platform
from fastest.ports import RateDecision
from fastest.services import identity
from fastest.services.identity.accounts import Principal
from fastest.services.identity.audit import RequestContext
from fastest.services.safeguards import rate_limits

_bearer = HTTPBearer(auto_error=False, description="A `fst_…` token from sign-in, the device flow or `fastest admin token`.")


async def get_platform(request: Request) -> Platform:
    # async: FastAPI runs plain `def` dependencies in a thread pool, a costly hop on every request.
    return request.state.platform


# A route's platform: `platform: PlatformDep`.
PlatformDep = Annotated[Platform, Depends(get_platform)]


# Every route states who may call it, machine-readably, in `/openapi.json` (see `api/access.py`):
# `x-fastest-ability` is the ability an `authorize(...)` route requires (`"*"`: any valid token),
# `x-fastest-fresh: true` that the session must be fresh; a route that needs no bearer token says
# why with `openapi_extra=public("…")` (`x-fastest-public`). The authorization matrix test
# (tests/api/test_authorization_matrix.py) reads these, and fails for a route that has neither.
ABILITY_EXTENSION = "x-fastest-ability"
FRESH_EXTENSION = "x-fastest-fresh"
PUBLIC_EXTENSION = "x-fastest-public"
ANY_ABILITY = "*"


def public(reason: str) -> dict[str, Any]:
    """`openapi_extra` for a route that takes no bearer token (sign-in, health): the reason why."""
    return {PUBLIC_EXTENSION: reason}


def authorize(
    ability: str | None, *, route_class: str = "default", fresh: bool = False
) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the bearer token, spends one unit of the caller's rate limit,
    and checks the ability (None: any valid token) and, for sensitive routes, that the session is
    fresh. The ability is recorded on the dependency, so `/openapi.json` says it (`api/access.py`)."""

    # The token is read here rather than through `Depends(_bearer)`: FastAPI resolves every
    # dependency anew on each request (a security scheme costs it more than most), and this one runs
    # on every authenticated request. The operation's `security` requirement is written into
    # `/openapi.json` from the ability mark below instead (`api/access.py`).
    async def dependency(request: Request) -> Principal:
        def report(decision: RateDecision) -> None:
            request.state.rate_limit = (route_class, decision)

        return await identity.authorize(
            request.state.platform, request_bearer_token(request), ability,
            route_class=route_class, fresh=fresh, on_rate_decision=report,
        )

    dependency.fastest_ability = ability or ANY_ABILITY  # type: ignore[attr-defined]
    dependency.fastest_fresh = fresh  # type: ignore[attr-defined]
    return dependency


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return None if credentials is None or credentials.scheme.lower() != "bearer" else credentials.credentials


def request_bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, read as `_bearer` reads it."""
    scheme, _, credentials = (request.headers.get("authorization") or "").partition(" ")
    credentials = credentials.strip()
    return credentials if scheme and credentials and scheme.lower() == "bearer" else None


def bearer_security_scheme() -> tuple[str, dict[str, Any]]:
    """The name and OpenAPI description of the bearer token scheme (`components.securitySchemes`)."""
    return _bearer.scheme_name, _bearer.model.model_dump(mode="json", by_alias=True, exclude_none=True)


def client_ip(request: Request) -> str | None:
    """The caller's address: Cloudflare's `CF-Connecting-IP` on the edge (set by Cloudflare, not the
    client), the socket's peer locally (a client-sent header there would be a lie we believe)."""
    platform: Platform = request.state.platform
    header = platform.capabilities.client_ip_header
    if header:
        forwarded = request.headers.get(header)
        if forwarded:
            return forwarded[:64]
    return request.client.host if request.client else None


async def limit_by_ip(request: Request, platform: Platform) -> None:
    """Routes called before anyone is known are limited per IP, like authenticated ones per user."""
    decision = await rate_limits.enforce(platform, f"ip:{client_ip(request) or 'unknown'}")
    request.state.rate_limit = ("default", decision)


async def request_context(request: Request) -> RequestContext:
    """Request id, IP and user agent, for the security audit log."""
    return RequestContext(
        request_id=request.state.request_id, ip=client_ip(request), user_agent=request.headers.get("user-agent")
    )


async def optional_bearer(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str | None:
    return bearer_token(credentials)


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None

    def key(self, *types: type) -> list | None:
        """The decoded keyset position (elements of these types), or None for the first page.
        A cursor we did not issue is a 422."""
        if self.cursor is None:
            return None
        try:
            return decode_cursor(self.cursor, *types)
        except InvalidCursor as exc:
            raise ValidationFailed("The cursor is not one this API issued.", fields={"query.cursor": "invalid cursor"}) from exc


def page_params(default_limit: int, maximum: int = 100) -> Callable[..., PageParams]:
    async def dependency(
        limit: int = Query(default_limit, ge=1, le=maximum, description=f"Page size (1–{maximum:,})."),
        cursor: str | None = Query(None, max_length=512, description="`next_cursor` from the previous page."),
    ) -> PageParams:
        return PageParams(limit=limit, cursor=cursor)

    return dependency
