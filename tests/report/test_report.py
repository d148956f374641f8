"""The report: self-contained HTML with every figure, tables in three formats, missing parts
stated, simulated ratings labelled; rendered by a real headless Chromium with a screenshot."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tidekit.report import report

EXPECTED = {"metrics", "scenarios", "ceiling", "human", "demographics", "agreement", "metric_human"}


@pytest.fixture(scope="module")
def rendered(full_run: Path) -> Any:
    return report(full_run)  # analyses the exported ratings first (no analysis/ yet)


def test_report_is_self_contained_and_complete(rendered: Any, full_run: Path) -> None:
    html = rendered.html.read_text()
    assert set(rendered.figures) == EXPECTED
    assert not re.search(r"(src|href)=[\"']https?://", html)  # no CDN, works offline
    assert html.count("data:image/png;base64,") == len(EXPECTED)
    assert "SIMULATED RATINGS" in html and rendered.simulated
    assert "not findings" in html.lower() or "NOT findings" in html
    assert "Methods" in html and "rate export" in html  # generated from the manifests
    for key in ("demographic_effects", "agreement", "metric_human", "comparisons"):
        for ext in ("csv", "md", "tex"):
            assert (full_run / "report" / "tables" / f"{key}.{ext}").is_file(), (key, ext)
    tex = (full_run / "report" / "tables" / "agreement.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\toprule" in tex
    for key in EXPECTED:
        assert (full_run / "report" / "figures" / f"{key}.svg").is_file()
    assert (full_run / "analysis" / "analysis.json").is_file()


def test_missing_parts_are_stated(tmp_path: Path, full_run: Path, run_cli: Callable[..., Any]) -> None:
    run = tmp_path / "partial"
    shutil.copytree(full_run / "scores", run / "scores")
    r = run_cli("report", run, "--no-analyze")
    assert r.code == 0, r.err
    html = (run / "report" / "report.html").read_text()
    assert "no ratings/ folder" in html and "no dataset/ folder" in html
    assert "SIMULATED" not in html
    assert run_cli("report", tmp_path / "nope").code != 0


@pytest.mark.slow
def test_report_renders_in_headless_chromium(rendered: Any, full_run: Path,
                                              require_tool: Callable[[str], str]) -> None:
    require_tool("chromium")
    pytest.importorskip("playwright")
    from tidekit.report._screenshot import figure_status, screenshot_html

    images = figure_status(rendered.html)
    assert {i["key"] for i in images} == EXPECTED
    assert all(i["complete"] and i["width"] > 100 and i["height"] > 100 for i in images), images
    shot = screenshot_html(rendered.html, full_run / "report" / "screenshot.png")
    assert shot.stat().st_size > 50_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
