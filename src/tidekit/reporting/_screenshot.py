"""Render a report in headless Chromium and save a full-page screenshot.

Uses Playwright for Python with the system's Chromium (Debian's ``chromium``; never
``playwright install``), offline: the report needs no network.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tidekit._io import atomic_path
from tidekit.errors import MissingDependencyError

__all__ = ["CHROMIUM_ARGS", "chromium_path", "screenshot_html"]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    """The system Chromium binary; MissingDependencyError naming the apt package if absent."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise MissingDependencyError("report screenshots", "chromium", "apt-get install -y chromium")


def screenshot_html(html: str | Path, out: str | Path, width: int = 1200) -> Path:
    """Open ``html`` in headless Chromium and save a full-page PNG to ``out``; returns ``out``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise MissingDependencyError("report screenshots", "playwright") from None

    out = Path(out)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(Path(html).resolve().as_uri())
            page.wait_for_load_state("load")
            with atomic_path(out, suffix=".png") as tmp:
                page.screenshot(path=str(tmp), full_page=True, type="png")
        finally:
            browser.close()
    return out


def figure_status(html: str | Path) -> list[dict[str, Any]]:
    """Each <img> of the page as Chromium decoded it: data-figure key and natural size."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(Path(html).resolve().as_uri())
            page.wait_for_load_state("load")
            return page.evaluate("""() => Array.from(document.images).map(i => ({key: i.dataset.figure,
                width: i.naturalWidth, height: i.naturalHeight, complete: i.complete}))""")
        finally:
            browser.close()
