"""Accessibility of the rating app, measured in Debian's chromium (headless, via Playwright).

Issue #32's points, each measured rather than assumed:
- forced colours (Windows High Contrast, emulated): the chosen point of a scale looks different
  from the others;
- every focus indicator reached with Tab has at least 3:1 contrast against what it sits on
  (WCAG 2.1 1.4.11; the old #ffbf47 ring was 1.64:1 on white);
- one ``<h1>`` and a ``<title>`` of its own on every page state;
- after a failed submit the error summary has focus and is in view;
- the admin tables that scroll are reached with the keyboard;
- at 200% text on a 375 px phone the scale's end labels do not run into each other;
- the completion code has no O/0 or I/1;
- axe-core (WCAG 2.0/2.1 A and AA), where the axe-playwright-python package is installed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
RELAXED = ["submit_rate=1000", "submit_burst=1000", "join_rate=1000", "join_burst=1000"]
FACTORS = ("empathy", "emotion_recognition", "distress_normalization", "supportive_reflection")
TOKEN = "test-admin-token"

# --- measuring -----------------------------------------------------------------------------------

_RGB = re.compile(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)")


def _rgb(css: str) -> tuple[float, float, float, float]:
    m = _RGB.match(css)
    assert m, f"not an rgb() colour: {css}"
    return float(m[1]), float(m[2]), float(m[3]), float(m[4]) if m[4] is not None else 1.0


def contrast(a: str, b: str) -> float:
    """WCAG 2.1 contrast ratio of two opaque CSS colours (relative luminance, sRGB)."""
    def lum(css: str) -> float:
        r, g, b_, _ = _rgb(css)
        chan = [c / 255 for c in (r, g, b_)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in chan]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_formula_against_known_values() -> None:
    # WebAIM's contrast checker: #FFBF47 on #FFFFFF is 1.64:1, black on white 21:1, #767676 on white 4.54:1
    assert round(contrast("rgb(255, 191, 71)", "rgb(255, 255, 255)"), 2) == 1.64
    assert round(contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)"), 1) == 21.0
    assert round(contrast("rgb(118, 118, 118)", "rgb(255, 255, 255)"), 2) == 4.54


# the focused element's ring (on the label when the input itself is invisible) and the colour
# behind it: the first opaque background from the ring's parent up (the ring sits outside the box)
_FOCUS_JS = """() => {
  let el = document.activeElement;
  if (!el || el === document.body) return null;
  let ring = el;
  if (getComputedStyle(el).opacity === '0' && el.nextElementSibling) ring = el.nextElementSibling;
  const cs = getComputedStyle(ring);
  let bgEl = ring.parentElement, bg = 'rgb(255, 255, 255)';
  while (bgEl) {
    const c = getComputedStyle(bgEl).backgroundColor;
    if (c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c)) { bg = c; break; }
    bgEl = bgEl.parentElement;
  }
  return {tag: el.tagName, id: el.id, cls: el.className, outlineStyle: cs.outlineStyle,
          outlineWidth: parseFloat(cs.outlineWidth), outlineColor: cs.outlineColor, background: bg,
          region: el.getAttribute('role') === 'region' ? el.getAttribute('aria-labelledby') : null};
}"""


def tab_through(page: Any, limit: int = 80) -> list[dict[str, Any]]:
    """Press Tab until focus comes round again; what each stop's focus ring looks like."""
    page.locator("body").focus()
    seen: list[dict[str, Any]] = []
    keys: set[tuple[str, str, str]] = set()
    for _ in range(limit):
        page.keyboard.press("Tab")
        info = page.evaluate(_FOCUS_JS)
        if info is None:
            continue
        key = (info["tag"], info["id"], str(info["cls"]), str(info["region"]))
        if key in keys and info["tag"] != "INPUT":
            break
        keys.add(key)
        seen.append(info)
    return seen


def check_focus_rings(page: Any, where: str) -> int:
    stops = tab_through(page)
    assert stops, f"{where}: nothing takes keyboard focus"
    for stop in stops:
        assert stop["outlineStyle"] != "none" and stop["outlineWidth"] >= 2, (where, stop)
        ratio = contrast(stop["outlineColor"], stop["background"])
        assert ratio >= 3.0, f"{where}: focus ring {stop['outlineColor']} on {stop['background']} is {ratio:.2f}:1"
    return len(stops)


def check_headings_and_title(page: Any, where: str, titles: dict[str, str]) -> None:
    h1 = page.locator("h1")
    assert h1.count() == 1, f"{where}: {h1.count()} <h1> elements"
    title = page.title()
    assert h1.inner_text().strip() in title, (where, title)
    assert title not in titles.values(), f"{where}: title {title!r} is also {[k for k, v in titles.items() if v == title]}"
    titles[where] = title


def axe_violations(page: Any) -> list[str]:
    axe_mod = pytest.importorskip("axe_playwright_python.sync_playwright",
                                  reason="axe-playwright-python is not installed")
    results = axe_mod.Axe().run(page, options={"runOnly": {"type": "tag", "values": [
        "wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"]]


# --- the journey ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(require_tool: Callable[[str], str]) -> Iterator[Any]:
    require_tool("chromium")
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def served(tmp_path: Any, make_study: Callable[..., tuple[str, str]], serve_study: Callable[..., Any]) -> Iterator[str]:
    db, _ = make_study(str(tmp_path / "ratings.db"), conversations=3, items_per_rater=3, ratings_per_item=1)
    with serve_study(db, *RELAXED) as (base, _):
        yield base


def _no_validation(page: Any) -> None:
    """Let the form go to the server incomplete, as a browser without validation would send it."""
    page.locator("form").first.evaluate("f => { f.noValidate = true; }")


def _rate_page_states(page: Any, base: str) -> Iterator[str]:
    """Walk a rater through every page state, yielding the name of each once it is shown."""
    page.goto(f"{base}/?PROLIFIC_PID=5f1a2b3c4d5e6f7a8b9c0d1e&STUDY_ID=S1&SESSION_ID=X1")
    yield "consent"
    _no_validation(page)
    page.get_by_role("button", name="I agree, start").click()
    page.wait_for_load_state()
    yield "consent error"
    page.get_by_label("I agree to take part", exact=False).check()
    page.get_by_role("button", name="I agree, start").click()
    page.wait_for_url("**/demographics")
    yield "demographics"
    _no_validation(page)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()
    yield "demographics error"
    for fieldset in page.locator("fieldset").all():
        fieldset.locator("label").last.click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/instructions")
    yield "instructions"
    page.get_by_role("link", name="Start rating").click()
    page.wait_for_url("**/rate")
    yield "rate"
    _no_validation(page)
    page.get_by_role("button", name="Submit and continue").click()
    page.wait_for_load_state()
    yield "rate error"
    while "/done" not in page.url:
        ask = re.search(r"please choose (\d) for every rating", page.locator("#reply-text").inner_text())
        for f in FACTORS:
            page.locator(f"label[for='{f}-{ask.group(1) if ask else 4}']").click()
        page.get_by_role("button", name="Submit and continue").click()
        page.wait_for_load_state()
    yield "done"
    page.goto(f"{base}/withdraw")
    yield "withdraw"


def test_every_page_state_has_one_h1_its_own_title_and_strong_focus_rings(browser: Any, served: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    titles: dict[str, str] = {}
    stops = 0
    for state in _rate_page_states(page, served):
        check_headings_and_title(page, state, titles)
        if state.endswith("error"):  # before any Tab moves the focus on
            focused = page.evaluate("document.activeElement && document.activeElement.id")
            assert focused == "error-summary", f"{state}: focus is on {focused!r}, not the error summary"
            box = page.locator("#error-summary").bounding_box()
            assert box is not None and 0 <= box["y"] < 844, f"{state}: the error summary is out of view ({box})"
            assert page.title().startswith("Error: ")
        if state == "done":
            code = page.locator("#completion-code").inner_text().strip()
            assert code and not set(code) & set("O0I1"), code
        stops += check_focus_rings(page, state)
    # admin: sign-in, a wrong token, the status page with its scrolling tables
    page.goto(f"{served}/admin")
    check_headings_and_title(page, "admin sign-in", titles)
    page.locator("#token").fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    check_headings_and_title(page, "admin sign-in error", titles)
    assert page.evaluate("document.activeElement.id") == "error-summary"
    page.locator("#token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    check_headings_and_title(page, "admin status", titles)
    regions = {s["region"] for s in tab_through(page) if s["region"]}
    assert {"raters-title", "items-title"} <= regions, regions  # the scrolling tables take focus
    stops += check_focus_rings(page, "admin status")
    assert stops > 40  # the walk really went through the pages' controls
    context.close()


def test_forced_colours_show_the_chosen_point(browser: Any, served: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    states = _rate_page_states(page, served)
    while next(states) != "rate":
        pass
    page.emulate_media(forced_colors="active")
    assert page.evaluate("matchMedia('(forced-colors: active)').matches")
    page.locator("label[for='empathy-4']").click()
    style = """l => { const c = getComputedStyle(l);
        return [c.backgroundColor, c.color, c.borderTopColor, c.borderTopWidth, c.borderTopStyle].join('|'); }"""
    chosen = page.locator("label[for='empathy-4']").evaluate(style)
    others = {page.locator(f"label[for='empathy-{n}']").evaluate(style) for n in (1, 2, 3, 5, 6, 7)}
    assert len(others) == 1 and chosen not in others, (chosen, others)
    # and on screen, not only in the computed style
    chosen_png = page.locator("label[for='empathy-4']").screenshot()
    other_png = page.locator("label[for='empathy-3']").screenshot()
    assert chosen_png != other_png
    context.close()


def test_end_labels_keep_apart_at_200_percent_text_on_a_phone(browser: Any, served: str) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812}, bypass_csp=True)
    page = context.new_page()
    states = _rate_page_states(page, served)
    while next(states) != "rate":
        pass
    page.add_style_tag(content="html { font-size: 200% !important; }")  # the browser's text zoom
    for anchors in page.locator(".anchors").all():
        low, high = (s.bounding_box() for s in anchors.locator("span").all())
        assert low is not None and high is not None
        apart = low["x"] + low["width"] + 8 <= high["x"] or low["y"] + low["height"] <= high["y"]
        assert apart, (low, high)
        assert high["x"] + high["width"] <= 375 + 0.5  # nothing pushed off the screen
    context.close()


def test_axe_finds_no_wcag_a_or_aa_violation_on_any_page_state(browser: Any, served: str) -> None:
    pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is not installed")
    context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
    page = context.new_page()
    found = {state: axe_violations(page) for state in _rate_page_states(page, served)}
    page.goto(f"{served}/admin")
    found["admin sign-in"] = axe_violations(page)
    page.locator("#token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    found["admin status"] = axe_violations(page)
    context.close()
    assert {k: v for k, v in found.items() if v} == {}
