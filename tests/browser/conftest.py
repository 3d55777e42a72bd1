"""The browser tests' Chromium: Debian's own, driven by Playwright (which cannot download
one here). A missing browser fails these tests, it never skips them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, sync_playwright

CHROMIUM = os.environ.get("OFFLOAD_TEST_CHROMIUM") or shutil.which("chromium") or "chromium"


@pytest.fixture
def page() -> Iterator[Page]:
    """A page of a headless Chromium, the system's own (Playwright cannot download one)."""
    assert shutil.which(CHROMIUM), f"Chromium not found at {CHROMIUM}: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()
