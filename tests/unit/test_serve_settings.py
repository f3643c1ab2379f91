"""`fastest serve` without FASTEST_PUBLIC_URL points the device flow's links at its own address."""

from __future__ import annotations

import pytest

from fastest.cli import main


@pytest.mark.parametrize("host, port, expected", [
    ("127.0.0.1", 9000, "http://127.0.0.1:9000"),
    ("0.0.0.0", 8787, "http://127.0.0.1:8787"),
    ("::1", 8080, "http://[::1]:8080"),
    ("localhost", 8787, "http://localhost:8787"),
])
def test_public_url_follows_host_and_port(monkeypatch, host, port, expected):
    monkeypatch.delenv("FASTEST_PUBLIC_URL", raising=False)
    assert main._serve_settings(host, port).public_url == expected


def test_a_configured_public_url_wins(monkeypatch):
    monkeypatch.setenv("FASTEST_PUBLIC_URL", "https://fastest.example.com")
    assert main._serve_settings("0.0.0.0", 8787).public_url == "https://fastest.example.com"


def test_google_settings_come_from_the_environment():
    from fastest.config import Settings

    settings = Settings.from_mapping({"FASTEST_GOOGLE_CLIENT_IDS": " a.apps , b.apps ,", "FASTEST_DEVICE_POLL_INTERVAL_SECONDS": "2"})
    assert settings.google_audiences == frozenset({"a.apps", "b.apps"})
    assert settings.device_poll_interval_seconds == 2
    assert Settings().google_audiences == frozenset()
