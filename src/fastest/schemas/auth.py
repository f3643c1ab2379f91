"""Sign-in, sessions, API keys, the device flow and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from fastest.schemas.common import RequestModel, ResponseModel

Credential = Annotated[str, StringConstraints(min_length=1, max_length=8192)]
UserCode = Annotated[str, StringConstraints(min_length=1, max_length=32)]
PROVIDER_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
Provider = Annotated[str, StringConstraints(pattern=PROVIDER_PATTERN)]
# A provider key: printable, no whitespace, at most 4 KiB.
KeyValue = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[!-~]+$")]


class GoogleSignIn(RequestModel):
    credential: Credential = Field(description="A Google ID token (JWT) for one of the configured client ids.")


class UserRef(ResponseModel):
    id: str
    email: str


class User(ResponseModel):
    id: str
    email: str
    name: str | None
    picture: str | None


class TokenGrant(ResponseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    user: UserRef


class MeResponse(ResponseModel):
    user: User


class Session(ResponseModel):
    id: str
    label: str
    abilities: list[str]
    created_at: str
    authenticated_at: str
    last_used_at: str | None
    expires_at: str
    current: bool = Field(description="True for the token making this request.")


class SessionList(ResponseModel):
    tokens: list[Session]
    next_cursor: str | None


class ApiKeySet(RequestModel):
    provider: Provider
    key_value: KeyValue


class ApiKey(ResponseModel):
    id: str
    user_id: str
    provider: str
    key_name: str
    key_value: str = Field(description="Masked: only the last 4 characters of a long key are visible.")
    created_at: str
    updated_at: str


class ApiKeyList(ResponseModel):
    api_keys: list[ApiKey]


class ApiKeyValues(ResponseModel):
    env_vars: dict[str, str]


class DeviceStart(RequestModel):
    scope: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description="Space-separated abilities the token should carry (default: all but secrets:read)."
    )
    client_name: Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = Field(
        default=None, description="Shown on the verification page, e.g. `fastest CLI on my-laptop`."
    )


class DeviceAuthorization(ResponseModel):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class TokenRequest(BaseModel):
    """Documented shape of `POST /v1/oauth/token` (also accepted form-encoded, as RFC 8628 has it)."""

    grant_type: str = Field(description="`urn:ietf:params:oauth:grant-type:device_code`")
    device_code: str


class OAuthError(BaseModel):
    error: str = Field(
        description="`authorization_pending`, `slow_down`, `access_denied`, `expired_token`, `invalid_grant`, "
        "`unsupported_grant_type` or `invalid_request`."
    )
    error_description: str
    interval: int | None = Field(default=None, description="With `slow_down`: the interval to use from now on.")


class DeviceTokenGrant(TokenGrant):
    abilities: list[str]


class DeviceDecision(RequestModel):
    user_code: UserCode
    credential: Credential | None = Field(
        default=None, description="A Google ID token; without it, the request's bearer token says who decides."
    )


class DeviceApproved(ResponseModel):
    success: bool = True
    message: str


class AuditEvent(ResponseModel):
    id: str
    type: str
    summary: str
    data: dict[str, Any]
    request_id: str | None
    ip: str | None
    user_agent: str | None
    created_at: str


class AuditList(ResponseModel):
    events: list[AuditEvent]
    next_cursor: str | None
