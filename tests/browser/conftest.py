"""Debian's chromium driven by Playwright, against the site served by pytest-django's live server.

No browser is downloaded: Playwright launches ``which chromium``. Every request the page makes to
anything but the live server is refused and recorded, so a page that needs the internet fails.
Screenshots go to ``var/screenshots/`` for people to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
# Without the background-networking flags chromium keeps calling Google's hosts, which this
# machine's closed network refuses.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls here are
    # still synchronous, which Django would otherwise refuse inside a running loop.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        yield browser
        browser.close()


class OfflinePage:
    """A page that may only talk to ``origin``; ``outside`` lists what it tried to reach beyond."""

    def __init__(self, browser: Any, origin: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.outside: list[str] = []
        self.origin = origin
        self.page.route("**/*", self._only_origin)

    def _only_origin(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.origin) or url.startswith("data:"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


@pytest.fixture
def offline_page(chromium: Any, live_server: Any) -> Iterator[OfflinePage]:
    page = OfflinePage(chromium, live_server.url)
    yield page
    page.context.close()
