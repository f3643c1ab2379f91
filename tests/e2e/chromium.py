"""Headless Chromium for the browser tests (Debian's `chromium` + `chromium-driver`, which `.ci/run`
installs), driven by selenium; the tests skip when it is not installed."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium is not installed: `apt-get install -y chromium chromium-driver` (.ci/run does this)",
)


@contextmanager
def headless_chromium(*flags: str) -> Iterator[Any]:
    """A headless Chromium session (with `flags` beyond the usual ones), quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", *flags):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
