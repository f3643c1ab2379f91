"""The OpenAPI document, fuzzed (schemathesis): no input makes the server fail (5xx), and every
response conforms to what the document says (status codes, content types, schemas, headers)."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance

from durable_objects.local import open_platform as open_local_platform
from fastest.app import create_app
from fastest.config import Settings
from fastest.domain.tokens import ABILITIES
from fastest.services import identity, projects


def _fuzz_target():
    """A real local platform with one user and project. Built at collection time because schemathesis
    parametrizes from the schema when the module is imported."""
    data_dir = Path(tempfile.mkdtemp(prefix="fastest-fuzz-"))
    platform = open_local_platform(data_dir, Settings(rate_limit_per_minute=10**9))
    atexit.register(shutil.rmtree, data_dir, True)
    atexit.register(platform.close)

    async def seed() -> str:
        user = await identity.ensure_user(platform, "fuzz@example.com")
        await projects.create(platform, user["id"], "fuzzed")
        return (await identity.issue_token(platform, user["id"], abilities=tuple(ABILITIES))).token

    async def throwaway_token() -> str:
        user = await identity.ensure_user(platform, "fuzz@example.com")
        return (await identity.issue_token(platform, user["id"], abilities=tuple(ABILITIES))).token

    return create_app(lambda scope: platform), asyncio.run(seed()), lambda: asyncio.run(throwaway_token())


APP, TOKEN, THROWAWAY_TOKEN = _fuzz_target()
# Routes that end the calling token get one of their own, so later cases stay authenticated.
SELF_REVOKING = {("POST", "/v1/auth/logout")}
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# We send a valid token with every case (below); don't let generated cases mutate it, or a case
# counted as "missing Authorization" would arrive authenticated and look wrongly accepted.
schema.config.generation.update(with_security_parameters=False)
# A schema-violating request may also be refused for its size (413) before its content is read.
rejection = schema.config.checks.negative_data_rejection
rejection.expected_statuses = [*rejection.expected_statuses, "413"]


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_conforming_responses(case):
    token = THROWAWAY_TOKEN() if (case.method.upper(), case.path) in SELF_REVOKING else TOKEN
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[
            # Schema-valid is not always acceptable: a random id is a 404, a made-up cursor a 422.
            positive_data_acceptance,
            # `/env-vars/values` is also `/env-vars/{key}` for a variable named "values" (the published
            # paths), so its Allow truthfully lists DELETE beside GET.
            allow_header_conformance,
        ],
    )
