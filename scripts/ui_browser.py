"""Headless Chromium (Debian's, driven by Playwright) logged in to a party's Airflow UI.

Used by the browser test (tests/test_ui_testbed.py) and by ``scripts/testbed.py screenshot``.
The browser is the system's /usr/bin/chromium (``scripts/setup_system.sh`` installs it);
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import re

CHROMIUM = os.environ.get("MPC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


class Browser:
    """``with Browser() as b: page = b.login(url, user, password)``; one browser context per
    login, so that parties never share cookies."""

    def __init__(self, viewport: dict | None = None):
        self.viewport = viewport or {"width": 1400, "height": 900}
        self._pw = self._browser = None

    def __enter__(self) -> Browser:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        return self

    def __exit__(self, *exc) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._pw is not None:
            self._pw.stop()

    def page(self):
        """A fresh page in a context of its own (no cookies)."""
        context = self._browser.new_context(viewport=self.viewport)
        context.set_default_timeout(60_000)
        return context.new_page()

    def login(self, url: str, user: str, password: str, next_path: str = "/"):
        """Log in through Airflow's own login form; returns the logged-in page."""
        page = self.page()
        page.goto(f"{url}{next_path}")
        page.wait_for_url(re.compile(r".*/auth/login.*"))
        page.get_by_label(re.compile("username", re.I)).fill(user)
        page.get_by_label(re.compile("password", re.I)).fill(password)
        page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
        page.wait_for_url(lambda u: "/auth/login" not in u)
        return page
