"""Fixtures for the local adapters' conformance tests.

Tests drive the async ports with plain `asyncio.run(...)`: each test is one short scenario, and no
pytest plugin is needed. Fixtures build adapters synchronously (as `open_local_platform` does) and
close them afterwards, so no file handle outlives its test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fastest.platform.local.blobs import LocalBlobStore
from fastest.platform.local.clock import ManualClock
from fastest.platform.local.database import LocalDatabase
from fastest.platform.local.kv import LocalKeyValue

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def local_db(tmp_path: Path) -> Iterator[LocalDatabase]:
    db = LocalDatabase(tmp_path / "d1.sqlite")
    yield db
    db.close()


@pytest.fixture
def blob_store(tmp_path: Path, manual_clock: ManualClock) -> Iterator[LocalBlobStore]:
    store = LocalBlobStore(tmp_path / "r2", manual_clock)
    yield store
    store.close()


@pytest.fixture
def kv_store(tmp_path: Path, manual_clock: ManualClock) -> Iterator[LocalKeyValue]:
    kv = LocalKeyValue(tmp_path / "kv.sqlite", manual_clock)
    yield kv
    kv.close()
