"""Fixtures shared by the HTTP API tests."""

from __future__ import annotations

import pytest

from tests.api.google_idp import FakeGoogle


@pytest.fixture
def idp():
    """A Google identity provider on loopback: its JWKS served over real HTTP, tokens signed here."""
    with FakeGoogle() as fake:
        yield fake
