"""Fixtures shared by the HTTP API tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.api.cloudflare_standin import CloudflareStandIn
from tests.api.deploy_target import DeployTarget
from tests.api.google_idp import FakeGoogle
from tests.edge_runtime import is_edge


@pytest.fixture
def idp():
    """A Google identity provider on loopback: its JWKS served over real HTTP, tokens signed here."""
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture
def deploy_target(platform, client) -> Iterator[DeployTarget]:
    """The runtime's own deploy provider: local (local), Cloudflare's API on its stand-in (edge),
    which must have found nothing to refuse by Cloudflare's rules."""
    if not is_edge():
        yield DeployTarget(platform, client, None)
        return
    with CloudflareStandIn() as cloudflare:
        yield DeployTarget(platform, client, cloudflare)
        assert cloudflare.problems == []
