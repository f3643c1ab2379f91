"""Auth: Google sign-in, the caller, sessions, logout, provider API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from fastest.api.deps import (
    PageParams,
    PlatformDep,
    authorize,
    limit_by_ip,
    page_params,
    public,
    request_context,
)
from fastest.api.path_ids import TokenId
from fastest.schemas.auth import (
    PROVIDER_PATTERN,
    ApiKeyList,
    ApiKeySet,
    ApiKeyValues,
    GoogleSignIn,
    MeResponse,
    SessionList,
    TokenGrant,
)
from fastest.schemas.common import Success, problem_responses
from fastest.services import conversations, identity
from fastest.services.identity import api_keys, google
from fastest.services.identity.accounts import Principal
from fastest.services.identity.audit import RequestContext

router = APIRouter(prefix="/v1/auth", tags=["auth"], responses=problem_responses(400, 401, 413, 422, 429))

ProviderPath = Annotated[str, Path(pattern=PROVIDER_PATTERN, description="A provider name, e.g. `openai`.")]
signed_in = authorize(None)
keys_write = authorize("keys:write")
keys_write_fresh = authorize("keys:write", fresh=True)


@router.post(
    "/google", response_model=TokenGrant, responses=problem_responses(503), summary="Sign in with a Google ID token",
    openapi_extra=public("sign-in: the Google ID token in the body is the credential"),
)
async def sign_in_with_google(
    body: GoogleSignIn,
    request: Request,
    response: Response,
    platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    await limit_by_ip(request, platform)
    person = await google.verify_id_token(platform, body.credential)
    user, issued = await identity.sign_in(
        platform, person.email, method="google", context=context, name=person.name, picture=person.picture,
        label="google",
    )
    response.headers["Cache-Control"] = "no-store"
    return {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": platform.settings.token_ttl_days * 86400,
        "user": {"id": user["id"], "email": user["email"]},
    }


@router.get("/me", response_model=MeResponse, summary="The signed-in user")
async def me(*, principal: Principal = Depends(signed_in), platform: PlatformDep):
    return {"user": identity.user_view(await identity.get_user(platform, principal.user_id))}


@router.get("/tokens", response_model=SessionList, summary="Your live sessions (never the tokens themselves)")
async def list_tokens(
    *,
    page: PageParams = Depends(page_params(50)),
    principal: Principal = Depends(signed_in),
    platform: PlatformDep,
):
    key = page.key(str, str)
    items, next_cursor = await identity.tokens_page(
        platform, principal, limit=page.limit, after=(key[0], key[1]) if key else None
    )
    return {"tokens": items, "next_cursor": next_cursor}


@router.delete(
    "/tokens/{token_id}",
    response_model=Success,
    responses=problem_responses(403, 404),
    summary="Revoke one of your tokens (fresh session)",
)
async def revoke_token(
    *,
    token_id: TokenId,
    principal: Principal = Depends(authorize(None, fresh=True)),
    platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    await identity.revoke_or_404(platform, principal, token_id, context)
    await conversations.close_token_streams(platform, token_id)
    return {"success": True}


@router.post("/logout", status_code=204, response_class=Response, summary="Revoke the token making this request")
async def logout(
    *,
    principal: Principal = Depends(signed_in),
    platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    await identity.revoke_token(platform, principal.user_id, principal.token_id, context=context, reason="signed out")
    await conversations.close_token_streams(platform, principal.token_id)
    return Response(status_code=204)


@router.get("/api-keys", response_model=ApiKeyList, responses=problem_responses(403), summary="Your provider API keys, masked")
async def list_api_keys(*, principal: Principal = Depends(keys_write), platform: PlatformDep):
    return {"api_keys": await api_keys.list_masked(platform, principal.user_id)}


@router.post(
    "/api-keys", response_model=Success, responses=problem_responses(403), summary="Set a provider API key (fresh session)"
)
async def set_api_key(
    *,
    body: ApiKeySet,
    principal: Principal = Depends(keys_write_fresh),
    platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    await api_keys.set_key(platform, principal.user_id, body.provider, body.key_value, context)
    return {"success": True}


@router.get(
    "/api-keys/values",
    response_model=ApiKeyValues,
    responses=problem_responses(403, 500),
    summary="Reveal your API keys as env vars (needs `secrets:read` and a fresh session)",
)
async def reveal_api_keys(
    *,
    response: Response,
    principal: Principal = Depends(authorize("secrets:read", fresh=True)),
    platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    response.headers["Cache-Control"] = "no-store"
    return {"env_vars": await api_keys.reveal(platform, principal.user_id, context)}


@router.delete(
    "/api-keys/{provider}",
    response_model=Success,
    responses=problem_responses(403, 404),
    summary="Delete a provider API key (fresh session)",
)
async def delete_api_key(
    *,
    provider: ProviderPath,
    principal: Principal = Depends(keys_write_fresh),
    platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    await api_keys.delete_key(platform, principal.user_id, provider, context)
    return {"success": True}
