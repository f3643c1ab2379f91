"""Integration webhooks (docs/webhooks.md): endpoints CRUD, test, deliveries log,
redeliver. Reads need `projects:read`, changes `projects:write` (webhooks carry project events);
another user's endpoint or delivery answers 404 like a missing one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from fastest.api.deps import (
    PageParams,
    PlatformDep,
    authorize,
    page_params,
    request_context,
)
from fastest.api.idempotency import HEADER
from fastest.api.path_ids import DeliveryId, WebhookId
from fastest.platform import Platform
from fastest.schemas.common import Success, problem_responses
from fastest.schemas.webhooks import (
    DeliveryList,
    DeliveryResponse,
    WebhookCreate,
    WebhookList,
    WebhookResponse,
    WebhookUpdate,
    WebhookWithSecret,
)
from fastest.services import webhooks
from fastest.services.identity.accounts import Principal
from fastest.services.identity.audit import RequestContext
from fastest.services.safeguards import idempotency

router = APIRouter(
    prefix="/v1/integrations/webhooks", tags=["integration webhooks"],
    responses=problem_responses(400, 401, 403, 404, 413, 422, 429),
)

read = authorize("projects:read")
write = authorize("projects:write")
# Minting a new signing secret is a secret write, like setting an API key: a fresh session only.
write_fresh = authorize("projects:write", fresh=True)


@router.get("", response_model=WebhookList, summary="Your webhook endpoints")
async def list_webhooks(*, principal: Principal = Depends(read), platform: PlatformDep):
    return {"webhooks": await webhooks.list_endpoints(platform, principal.user_id)}


@router.post("", response_model=WebhookWithSecret, status_code=201, responses=problem_responses(409),
             summary="Add a webhook endpoint (its signing secret is shown once)")
async def create_webhook(
    *,
    body: WebhookCreate, request: Request, principal: Principal = Depends(write), platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    async def produce() -> dict[str, Any]:
        webhook, secret = await webhooks.create_endpoint(
            platform, principal.user_id, url=body.url, events=body.events, enabled=body.enabled,
            rate_limit_per_minute=body.rate_limit_per_minute, failure_backoff_seconds=body.failure_backoff_seconds,
            project_id=body.project_id, context=context,
        )
        return {"webhook": webhook, "secret": secret}

    return await _create_once(request, platform, principal.user_id, produce)


@router.patch("/{webhook_id}", response_model=WebhookResponse, summary="Change a webhook endpoint (enable re-arms a disabled one)")
async def update_webhook(
    *,
    body: WebhookUpdate, webhook_id: WebhookId, principal: Principal = Depends(write),
    platform: PlatformDep,
):
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("url", "events", "enabled"):
        if name in changes and changes[name] is None:
            changes.pop(name)
    return {"webhook": await webhooks.update_endpoint(platform, principal.user_id, webhook_id, changes)}


@router.delete("/{webhook_id}", response_model=Success, summary="Delete a webhook endpoint and its deliveries log")
async def delete_webhook(
    *,
    webhook_id: WebhookId, principal: Principal = Depends(write), platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    await webhooks.delete_endpoint(platform, principal.user_id, webhook_id, context)
    return {"success": True}


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookWithSecret,
             summary="Replace the signing secret (the new one is shown once; fresh session)")
async def rotate_webhook_secret(
    *,
    webhook_id: WebhookId, principal: Principal = Depends(write_fresh), platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    webhook, secret = await webhooks.rotate_secret(platform, principal.user_id, webhook_id, context)
    return {"webhook": webhook, "secret": secret}


@router.post("/{webhook_id}/test", response_model=DeliveryResponse, summary="Send a signed `webhook.test` delivery now")
async def test_webhook(*, webhook_id: WebhookId, principal: Principal = Depends(write), platform: PlatformDep):
    return {"delivery": await webhooks.send_test(platform, principal.user_id, webhook_id)}


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList, summary="The endpoint's delivery attempts, newest first")
async def list_deliveries(
    *,
    webhook_id: WebhookId, page: PageParams = Depends(page_params(50)), principal: Principal = Depends(read),
    platform: PlatformDep,
):
    key = page.key(int)
    deliveries, cursor = await webhooks.deliveries_page(
        platform, principal.user_id, webhook_id, limit=page.limit, before_seq=key[0] if key else None
    )
    return {"deliveries": deliveries, "next_cursor": cursor}


@router.post("/deliveries/{delivery_id}/redeliver", response_model=DeliveryResponse, responses=problem_responses(409),
             summary="Send a delivery's message again now (same `webhook-id`)")
async def redeliver(*, delivery_id: DeliveryId, principal: Principal = Depends(write), platform: PlatformDep):
    return {"delivery": await webhooks.redeliver(platform, principal.user_id, delivery_id)}


async def _create_once(request: Request, platform: Platform, user_id: str, produce) -> JSONResponse:
    """`Idempotency-Key` for the creation, like `respond_once`, except that the stored answer keeps
    the signing secret sealed with the Vault (never plain in the idempotency table); a replay opens
    it again, so the client that lost the first answer still gets its secret."""
    key = request.headers.get(HEADER)
    if key is None:
        return JSONResponse(jsonable_encoder(await produce()), status_code=201)
    purpose = f"idempotent_webhook:{key}"
    stored = await idempotency.begin(platform, user_id, key, idempotency.fingerprint(request.method, request.url.path, await request.body()))
    if stored is not None:
        body = dict(stored.body)
        if "sealed_secret" in body:
            body["secret"] = await platform.vault.decrypt(body.pop("sealed_secret"), owner=user_id, purpose=purpose)
        return JSONResponse(body, status_code=stored.status, headers={"Idempotent-Replayed": "true"})
    try:
        body = jsonable_encoder(await produce())
    except BaseException:
        await idempotency.release(platform, user_id, key)
        raise
    sealed = {**{k: v for k, v in body.items() if k != "secret"},
              "sealed_secret": await platform.vault.encrypt(body["secret"], owner=user_id, purpose=purpose)}
    await idempotency.complete(platform, user_id, key, 201, sealed)
    return JSONResponse(body, status_code=201)
