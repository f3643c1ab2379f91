"""Fixtures shared by the API tests: a real local platform in a temp dir and an ASGI client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from durable_objects.local import open_platform as open_local_platform
from fastest.app import create_app
from fastest.config import Settings
from fastest.domain.tokens import DEFAULT_ABILITIES
from fastest.platform import Platform
from fastest.platform.local.clock import ManualClock
from fastest.services import identity
from tests.edge_runtime import EdgeHarness, edge_client, edge_skip_reason, is_edge, open_edge_platform


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the edge runtime, the tests listed in tests/edge_runtime.py's EDGE_SKIPS are skipped with
    their reason."""
    if not is_edge():
        return
    for item in items:
        reason = edge_skip_reason(item.nodeid)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"not on edge: {reason}"))


def run(coro: Any) -> Any:
    """Run one coroutine to completion from a synchronous test."""
    return asyncio.run(coro)


@dataclass
class Caller:
    user_id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(timezone.utc).replace(microsecond=0))


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def edge_harness() -> Iterator[EdgeHarness]:
    """The Worker on the edge harness, one per session (FASTEST_TEST_RUNTIME=edge only)."""
    harness = EdgeHarness()
    yield harness
    harness.close()


@pytest.fixture
def platform(request: pytest.FixtureRequest, tmp_path: Path, settings: Settings, clock: ManualClock) -> Iterator[Platform]:
    if is_edge():
        platform = open_edge_platform(request.getfixturevalue("edge_harness"), tmp_path / "data", settings, clock)
    else:
        platform = open_local_platform(tmp_path / "data", settings, clock=clock)
    yield platform
    platform.close()


@pytest.fixture
def client(request: pytest.FixtureRequest, platform: Platform, clock: ManualClock) -> Iterator[TestClient]:
    """The API over HTTP: the app in-process (local), or the Worker on the edge harness (edge)."""
    if is_edge():
        with edge_client(request.getfixturevalue("edge_harness"), clock) as edge:
            yield edge
        return
    app = create_app(lambda scope: platform)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def make_caller(platform: Platform, email: str, abilities: tuple[str, ...] = DEFAULT_ABILITIES) -> Caller:
    async def create() -> Caller:
        user = await identity.ensure_user(platform, email)
        issued = await identity.issue_token(platform, user["id"], abilities=abilities, label="test")
        return Caller(user_id=user["id"], email=email, token=issued.token)

    return run(create())


@pytest.fixture
def alice(platform: Platform) -> Caller:
    return make_caller(platform, "alice@example.com")


@pytest.fixture
def bob(platform: Platform) -> Caller:
    return make_caller(platform, "bob@example.com")


def count_rows(platform: Platform, sql: str, *params: Any) -> int:
    return run(platform.db.prepare(sql).bind(*params).first("n"))


def assert_problem(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["error"]["code"] == code
    assert body["type"].endswith(code)
    assert body["instance"].endswith(response.headers["x-request-id"])
    return body
