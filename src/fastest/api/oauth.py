"""OAuth device flow (RFC 8628): start, poll for the token, approve, deny.

`POST /v1/oauth/token` answers errors in the OAuth shape (`{error, error_description}`, 400), not
problem+json: OAuth clients branch on `error`. It accepts JSON and the RFC's form encoding.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from fastest.api.deps import (
    PlatformDep,
    limit_by_ip,
    optional_bearer,
    public,
    request_context,
)
from fastest.domain import tokens
from fastest.domain.untrusted_text import parse_json
from fastest.errors import InvalidJson, Unauthenticated, ValidationFailed
from fastest.platform import Platform
from fastest.schemas.auth import (
    DeviceApproved,
    DeviceAuthorization,
    DeviceDecision,
    DeviceStart,
    DeviceTokenGrant,
    OAuthError,
    TokenRequest,
)
from fastest.schemas.common import Success, problem_responses
from fastest.services import identity
from fastest.services.identity import device_flow, google
from fastest.services.identity.audit import RequestContext

router = APIRouter(prefix="/v1/oauth", tags=["oauth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/device",
    response_model=DeviceAuthorization,
    responses=problem_responses(400, 413, 422, 429),
    summary="Start a device sign-in: codes for the CLI to show",
    openapi_extra=public("sign-in: the CLI has no token yet; limited per IP"),
)
async def start_device_flow(
    *,
    request: Request,
    response: Response,
    body: DeviceStart | None = None,
    platform: PlatformDep,
):
    await limit_by_ip(request, platform)
    abilities = None
    if body is not None and body.scope is not None:
        try:
            abilities = tokens.parse_abilities(body.scope.split())
        except ValueError as exc:
            raise ValidationFailed("Unknown ability in scope.", fields={"scope": str(exc)}) from exc
    response.headers.update(NO_STORE)
    return await device_flow.start(platform, client_name=(body.client_name or "") if body else "", abilities=abilities)


async def _token_request_fields(request: Request) -> dict[str, Any]:
    try:
        raw = await request.body()
    except InvalidJson as exc:  # nested too deep: refused as the body is read (api.middleware)
        raise device_flow.OAuthError("invalid_request", "The body must be JSON or form-encoded.") from exc
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/x-www-form-urlencoded":
            return {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
        document = parse_json(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise device_flow.OAuthError("invalid_request", "The body must be JSON or form-encoded.") from exc
    if not isinstance(document, dict):
        raise device_flow.OAuthError("invalid_request", "The body must be a JSON object.")
    return document


@router.post(
    "/token",
    response_model=DeviceTokenGrant,
    responses={
        400: {"model": OAuthError, "description": "An OAuth error (RFC 8628 §3.5), `application/json`"},
        413: problem_responses(413)[413],
    },
    openapi_extra={
        **public("sign-in: the secret device code in the body is the credential"),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": TokenRequest.model_json_schema()},
                "application/x-www-form-urlencoded": {"schema": TokenRequest.model_json_schema()},
            },
        }
    },
    summary="Poll for the token of a device sign-in",
)
async def device_token(
    request: Request, platform: PlatformDep, context: RequestContext = Depends(request_context)
):
    try:
        fields = await _token_request_fields(request)
        grant_type, device_code = fields.get("grant_type"), fields.get("device_code")
        if not isinstance(grant_type, str) or not grant_type:
            raise device_flow.OAuthError("invalid_request", "grant_type is required.")
        granted = await device_flow.poll(
            platform, grant_type, device_code if isinstance(device_code, str) else None, context
        )
    except device_flow.OAuthError as exc:
        return JSONResponse(exc.body(), status_code=400, headers=NO_STORE)
    return JSONResponse(granted, headers=NO_STORE)


async def _decider(
    request: Request, platform: Platform, credential: str | None, bearer: str | None, *, approving: bool
) -> tuple[str, str, frozenset[str] | None]:
    """Who decides (user id, how they proved it, ability ceiling): the person of a Google credential, else the bearer token's user, whose abilities
    cap what the device gets. Approving mints a fresh token, so a bearer token may approve only
    while its own session is fresh: an old (or stolen) token cannot launder itself into a new one."""
    if credential is not None:
        await limit_by_ip(request, platform)
        user = await google.user_for(platform, credential)
        return user["id"], "google", None
    if bearer is None:
        raise Unauthenticated("Send a Google `credential` or `Authorization: Bearer <token>`.")
    principal = await identity.authorize(
        platform, bearer, None, fresh=approving,
        on_rate_decision=lambda decision: setattr(request.state, "rate_limit", ("default", decision)),
    )
    return principal.user_id, "token", principal.abilities


_DECISION_RESPONSES = problem_responses(400, 401, 403, 404, 413, 422, 429, 503)
_DECIDER = "a Google credential in the body or a bearer token (any ability, checked in the handler); code lookups are limited per IP and user"


@router.post(
    "/device/authorize", response_model=DeviceApproved, responses=_DECISION_RESPONSES, summary="Approve a device sign-in",
    openapi_extra=public(_DECIDER),
)
async def authorize_device(
    body: DeviceDecision,
    request: Request,
    platform: PlatformDep,
    bearer: str | None = Depends(optional_bearer),
    context: RequestContext = Depends(request_context),
):
    user_id, method, ceiling = await _decider(request, platform, body.credential, bearer, approving=True)
    device = await device_flow.decide(
        platform, user_id, body.user_code, approve=True, context=context, method=method, ability_ceiling=ceiling
    )
    return {"success": True, "message": f"Device authorized: {device.client_name} can now sign in ({device.user_code})."}


@router.post(
    "/device/deny", response_model=Success, responses=_DECISION_RESPONSES, summary="Deny a device sign-in",
    openapi_extra=public(_DECIDER),
)
async def deny_device(
    body: DeviceDecision,
    request: Request,
    platform: PlatformDep,
    bearer: str | None = Depends(optional_bearer),
    context: RequestContext = Depends(request_context),
):
    user_id, method, _ = await _decider(request, platform, body.credential, bearer, approving=False)
    await device_flow.decide(platform, user_id, body.user_code, approve=False, context=context, method=method)
    return {"success": True}
