"""Shared model bases and field types.

Requests are strict: no coercion (`"4abc"`, `1.5` or `false` are not integers; `1` is not a boolean)
and unknown fields are rejected, so a typo is an error rather than a silently ignored field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


class RequestModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class Success(ResponseModel):
    success: bool = True


def _trimmed(value: str) -> str:
    trimmed = value.strip()
    if not trimmed:
        raise ValueError("must not be blank")
    return trimmed


# A display name: 1–100 characters, no control characters (a trailing newline included: the check
# runs on what was sent, as the OpenAPI pattern says), then trimmed of surrounding spaces.
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"), AfterValidator(_trimmed)
]


class ProblemError(BaseModel):
    code: str = Field(description="Stable snake_case error code clients can branch on.")
    message: str
    fields: dict[str, str] | None = Field(default=None, description="Field path → what is wrong with it.")


class Problem(BaseModel):
    """RFC 9457 problem details, plus `error: {code, message, fields}` (a stable code clients branch on)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    instance: str
    error: ProblemError


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem+json errors for a route."""
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}, "description": "Error"}
        for status in statuses
    }
