"""The browser fixture shared by the web tests (Debian's Chromium driven by Playwright).

Without Chromium (or the playwright package) a browser test skips with the reason, unless
``SEALROOM_REQUIRE_BROWSER=1`` (CI) makes that a failure. No browser is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.browser import CHROMIUM


def _unavailable(reason: str) -> None:
    if os.environ.get("SEALROOM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SEALROOM_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def chromium(playwright: Any) -> Iterator[Any]:
    """A launched Debian Chromium, closed after the test."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
    try:
        yield browser
    finally:
        browser.close()
