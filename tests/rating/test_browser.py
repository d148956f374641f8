"""A real rater journey in Debian's chromium (headless, via Playwright), against ``tidekit rate
serve`` on 127.0.0.1, on SQLite and PostgreSQL; and SIGKILL of the server under load.

Screenshots of the rating page (phone and desktop widths) go to the test's temp folder; with
TIDEKIT_UPDATE_SCREENSHOTS=1 they also replace docs/images/rating-page-*.png.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
RELAXED = ["submit_rate=1000", "submit_burst=1000", "join_rate=1000", "join_burst=1000"]
FACTORS = ("empathy", "emotion_recognition", "distress_normalization", "supportive_reflection")


@pytest.fixture(scope="module")
def browser(require_tool: Callable[[str], str]) -> Any:
    require_tool("chromium")
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def shoot(page: Any, name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 10_000
    if os.environ.get("TIDEKIT_UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, ROOT / "docs" / "images" / f"{name}.png")


def test_rater_journey_in_a_real_browser(browser: Any, db_url: str, make_study: Callable[..., tuple[str, str]],
                                         serve_study: Callable[..., Any], run_cli: Callable[..., Any],
                                         tmp_path: Path, xss: str) -> None:
    db, _ = make_study(db_url, conversations=3, items_per_rater=5, ratings_per_item=1)
    rng = random.Random(7)
    with serve_study(db, *RELAXED) as (base, _):
        context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{base}/?PROLIFIC_PID=5f1a2b3c4d5e6f7a8b9c0d1e&STUDY_ID=S1&SESSION_ID=X1")
        assert page.locator("h1").inner_text() == "Information and consent"
        page.get_by_label("I agree to take part", exact=False).check()
        page.get_by_role("button", name="I agree, start").click()
        page.wait_for_url("**/demographics")
        for legend in page.locator("fieldset").all():
            legend.locator("label").last.click()  # "Prefer not to say" is last everywhere
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url("**/instructions")
        page.get_by_role("link", name="Start rating").click()
        sent: list[dict[str, Any]] = []
        while "/done" not in page.url:
            page.wait_for_selector("#reply-text")
            reply = page.locator("#reply-text").inner_text()
            if "<script>" in reply:  # the script tag is shown as text, never run
                assert xss in reply
            ask = re.search(r"please choose (\d) for every rating", reply)
            values = {f: int(ask.group(1)) if ask else rng.randint(1, 7) for f in FACTORS}
            if not sent:
                shoot(page, "rating-page-phone", tmp_path)
                page.set_viewport_size({"width": 1280, "height": 900})
                shoot(page, "rating-page-desktop", tmp_path)
                # keyboard only: Tab into the first scale, arrows move within it
                page.locator("#empathy-1").focus()
                for _ in range(values["empathy"] - 1):
                    page.keyboard.press("ArrowRight")
                assert page.locator(f"#empathy-{values['empathy']}").is_checked()
                for f in FACTORS[1:]:
                    page.locator(f"label[for='{f}-{values[f]}']").click()
            else:
                for f in FACTORS:
                    page.locator(f"label[for='{f}-{values[f]}']").click()
            comment = f"comment {len(sent)} {xss}" if len(sent) == 1 else ""
            page.get_by_label("Comment (optional)").fill(comment)
            page.get_by_role("button", name="Submit and continue").click()
            page.wait_for_load_state()
            sent.append({**values, "comment": comment})
        code = page.locator("#completion-code").inner_text()
        assert re.fullmatch(r"[A-Z0-9]{4,}", code)
        assert page.get_by_role("link", name="Return to Prolific to finish").get_attribute("href").endswith(code)
        assert dialogs == []  # no script ever ran
        context.close()
    assert len(sent) == 6  # 5 items + 1 attention check
    out = tmp_path / "export" / "ratings.csv"
    result = run_cli("rate", "export", "--db", db, "--out", out)
    assert result.code == 0, result.err
    import pandas as pd

    frame = pd.read_csv(out, keep_default_na=False).sort_values("position")
    got = frame[[*FACTORS, "comment"]].to_dict("records")
    assert got == sent  # exactly the ratings submitted, nothing more
    assert frame["attention_passed"].all() and set(frame["age_group"]) == {"prefer_not_to_say"}
    assert "5f1a2b3c4d5e6f7a8b9c0d1e" not in out.read_text()


def test_sigkill_under_load_loses_no_acknowledged_rating(db_url: str, tmp_path: Path) -> None:
    """The load benchmark, small: 10 raters; the server is SIGKILLed mid-load and restarted."""
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rating_load.py"), "--db", db_url,
                           "--raters", "10", "--submissions", "1500", "--items-per-rater", "10",
                           "--kill-after", "1.0", "--time-limit", "90", "--json", str(out)],
                          capture_output=True, text=True, timeout=240, check=False)
    assert out.exists(), proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["killed"] and r["acknowledged_before_kill"] > 0 and r["acknowledged"] >= 1500, r
    assert r["lost"] == 0 and r["duplicated"] == 0 and r["wrong_values"] == 0 and r["unexplained_rows"] == 0, r
    assert r["double_posts"] > 0 and proc.returncode == 0
