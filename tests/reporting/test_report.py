"""The report: self-contained HTML with every figure, tables in three formats, missing parts
stated, simulated ratings labelled; rendered by a real headless Chromium with a screenshot."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tidekit.reporting import ReportConfig, report

EXPECTED = {"metrics", "scenarios", "ceiling", "human", "demographics", "agreement", "metric_human", "ppi"}


@pytest.fixture(scope="module")
def rendered(full_run: Path) -> Any:
    return report(ReportConfig(run=str(full_run)))  # analyses the exported ratings first (no analysis/ yet)


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
    from tidekit.reporting._screenshot import figure_status, screenshot_html

    images = figure_status(rendered.html)
    assert {i["key"] for i in images} == EXPECTED
    assert all(i["complete"] and i["width"] > 100 and i["height"] > 100 for i in images), images
    shot = screenshot_html(rendered.html, full_run / "report" / "screenshot.png")
    assert shot.stat().st_size > 50_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_figure_leaves_out_the_end_of_training_summary(tmp_path: Path) -> None:
    from tidekit.reporting._figures import fig_training
    from tidekit.reporting._run import RunContents

    rows = [{"kind": "train", "step": 10, "loss": 2.4}, {"kind": "train", "step": 20, "loss": 1.9},
            {"kind": "eval", "step": 20, "eval_loss": 2.1},
            {"kind": "summary", "step": 20, "train_loss": 2.15, "train_runtime": 31.0}]
    fig = fig_training(RunContents(root=tmp_path, finetune={"smollm2-135m": rows}))
    assert fig is not None
    lines = fig.axes[0].get_lines()
    curve = [(list(line.get_xdata()), list(line.get_ydata())) for line in lines]
    assert curve == [([10, 20], [2.4, 1.9]), ([20], [2.1])]  # no vertical drop to the 2.15 average
    assert fig_training(RunContents(root=tmp_path)) is None
