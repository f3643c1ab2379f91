"""The OpenAPI document, fuzzed (schemathesis): no input makes the server fail (5xx), and every
response conforms to what the document says (status codes, content types, schemas, headers).

Locally the app runs in-process; on `edge` (FASTEST_TEST_RUNTIME=edge) the same cases go over HTTP
to the Worker on the edge harness, which must serve this very document."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance

from durable_objects.local import open_platform as open_local_platform
from fastest.app import create_app
from fastest.config import Settings
from fastest.domain.tokens import ABILITIES
from fastest.platform import Platform
from fastest.platform.local.clock import ManualClock
from fastest.services import identity, projects
from tests.edge_runtime import NOW_HEADER, is_edge, open_edge_platform

FUZZ_SETTINGS = Settings(rate_limit_per_minute=10**9)


async def _seed(platform: Platform) -> str:
    """One user with every ability and one project; the user's token."""
    user = await identity.ensure_user(platform, "fuzz@example.com")
    await projects.create(platform, user["id"], "fuzzed")
    return await _throwaway_token(platform)


async def _throwaway_token(platform: Platform) -> str:
    user = await identity.ensure_user(platform, "fuzz@example.com")
    return (await identity.issue_token(platform, user["id"], abilities=tuple(ABILITIES))).token


def _fuzz_target():
    """A real local platform with one user and project. Built at collection time because schemathesis
    parametrizes from the schema when the module is imported."""
    data_dir = Path(tempfile.mkdtemp(prefix="fastest-fuzz-"))
    platform = open_local_platform(data_dir, FUZZ_SETTINGS)
    atexit.register(shutil.rmtree, data_dir, True)
    atexit.register(platform.close)
    return create_app(lambda scope: platform), asyncio.run(_seed(platform)), lambda: asyncio.run(_throwaway_token(platform))


if is_edge():
    # The cases are made from the app's document here (the Worker's is checked to be the same one) and
    # sent over HTTP; the Worker's storage is the harness's, seeded once for the module below.
    schema = schemathesis.openapi.from_dict(create_app(lambda scope: None).openapi())
else:
    APP, TOKEN, THROWAWAY_TOKEN = _fuzz_target()
    schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# Generated cases per operation beyond schemathesis's coverage cases (each boundary value, missing
# and wrong-typed parameters, undeclared methods), which always run. On `edge` each case is a request
# through Pyodide, several times slower than in-process, and what differs there from the local app is
# the runtime's edge (methods, sizes, encodings, storage), which the coverage cases reach.
MAX_EXAMPLES = 10 if is_edge() else 30
# Routes that end the calling token get one of their own, so later cases stay authenticated.
SELF_REVOKING = {("POST", "/v1/auth/logout")}
# We send a valid token with every case (below); don't let generated cases mutate it, or a case
# counted as "missing Authorization" would arrive authenticated and look wrongly accepted.
schema.config.generation.update(with_security_parameters=False)
# A schema-violating request may also be refused for its size (413) before its content is read.
rejection = schema.config.checks.negative_data_rejection
rejection.expected_statuses = [*rejection.expected_statuses, "413"]


@dataclass
class Target:
    """Where a case goes: its token, a fresh one for self-revoking routes, and how it is sent."""

    token: str
    throwaway_token: Callable[[], str]
    headers: Callable[[], dict[str, str]] = dict
    call: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def worker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """On `edge`: the Worker, from empty storage seeded once for the module as the local app is, over
    one keep-alive connection; it serves the document the cases were made from."""
    harness = request.getfixturevalue("edge_harness")
    clock = ManualClock(datetime.now(timezone.utc).replace(microsecond=0))
    platform = open_edge_platform(harness, tmp_path_factory.mktemp("fuzz") / "data", FUZZ_SETTINGS, clock)
    with requests.Session() as session:
        served = session.get(harness.url + "/openapi.json", timeout=60)
        assert served.status_code == 200 and served.json() == schema.raw_schema, "the Worker serves another document"
        yield Target(
            asyncio.run(_seed(platform)),
            lambda: asyncio.run(_throwaway_token(platform)),
            headers=lambda: {NOW_HEADER: str(int(clock.now().timestamp() * 1000))},
            call={"base_url": harness.url, "session": session, "timeout": 60},
        )
    platform.close()


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    return request.getfixturevalue("worker") if is_edge() else Target(TOKEN, THROWAWAY_TOKEN)


@schema.parametrize()
@hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_conforming_responses(case, target):
    token = target.throwaway_token() if (case.method.upper(), case.path) in SELF_REVOKING else target.token
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}", **target.headers()},
        excluded_checks=[
            # Schema-valid is not always acceptable: a random id is a 404, a made-up cursor a 422.
            positive_data_acceptance,
            # `/env-vars/values` is also `/env-vars/{key}` for a variable named "values" (the published
            # paths), so its Allow truthfully lists DELETE beside GET.
            allow_header_conformance,
        ],
        **target.call,
    )
