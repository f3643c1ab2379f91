"""Integration webhooks: endpoints, their deliveries log (docs/webhooks.md).

The guardrails are strict integers: `1.5`, `"4abc"` or `true` are refused with 422, never coerced.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictInt, StringConstraints

from fastest.schemas.common import RequestModel, ResponseModel

WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=64)]
RateLimit = Annotated[StrictInt, Field(ge=1, le=10_000, description="Most deliveries per minute to this endpoint (null: no limit).")]
Backoff = Annotated[StrictInt, Field(ge=0, le=86_400, description="Seconds to hold back this endpoint's deliveries after a failed attempt (null: none).")]
ProjectScope = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class WebhookCreate(RequestModel):
    url: WebhookUrl = Field(description="HTTPS URL of your receiver.")
    events: list[EventType] = Field(min_length=1, max_length=32, description="Event types to receive (`*`: all).")
    enabled: StrictBool = True
    rate_limit_per_minute: RateLimit | None = None
    failure_backoff_seconds: Backoff | None = None
    project_id: ProjectScope | None = Field(default=None, description="Only this project's events (null: all your projects).")


class WebhookUpdate(RequestModel):
    url: WebhookUrl | None = None
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=32)
    enabled: StrictBool | None = None
    rate_limit_per_minute: RateLimit | None = None
    failure_backoff_seconds: Backoff | None = None
    project_id: ProjectScope | None = None


class Webhook(ResponseModel):
    id: str
    url: str
    events: list[str]
    enabled: bool
    rate_limit_per_minute: int | None
    failure_backoff_seconds: int | None
    project_id: str | None
    created_at: str
    updated_at: str
    disabled_reason: str | None


class WebhookResponse(ResponseModel):
    webhook: Webhook


class WebhookWithSecret(ResponseModel):
    webhook: Webhook
    secret: str = Field(description="The signing secret (`whsec_…`), shown only in this response.")


class WebhookList(ResponseModel):
    webhooks: list[Webhook]


class Delivery(ResponseModel):
    id: str
    endpoint_id: str
    message_id: str = Field(description="The `webhook-id` header: the same on every attempt of one message.")
    event: str
    event_id: str
    attempt: int
    trigger: str = Field(description="event | retry | test | redeliver")
    success: bool
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    duration_ms: int
    next_retry_at: str | None
    created_at: str


class DeliveryResponse(ResponseModel):
    delivery: Delivery


class DeliveryList(ResponseModel):
    deliveries: list[Delivery]
    next_cursor: str | None
