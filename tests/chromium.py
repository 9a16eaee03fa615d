"""Debian's chromium driven by Playwright, for the console's browser tests.

The system browser, never one Playwright downloads (``playwright install`` is not used): CI
installs Debian's ``chromium`` (.ci/run). Without it, the tests fail in CI (``CI`` set) and skip
elsewhere with the reason. Screenshots go to ``tests/screenshots/`` (gitignored), one per page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("STAGESYNC_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: CI must test the console in a real browser "
                    "(.ci/run installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is not installed here (apt-get install chromium); CI runs these")


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright's sync API)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Any, name: str, folder: Path = SCREENSHOTS, full_page: bool = True
               ) -> Path:
    """The page (the whole of it, or what the window shows) as ``<folder>/<name>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
