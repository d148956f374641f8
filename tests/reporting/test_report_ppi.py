"""The report's prediction-powered section: human-only and PPI estimates side by side, the
predictor, lambda and the effective sample size; and the n == N case said plainly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tidekit.reporting import ReportConfig, report


def _with_unrated_conversations(root: Path, extra: int = 36, seed: int = 0) -> None:
    """Add scores for conversations nobody rated (the automatic scores cover more than the ratings)."""
    path = root / "scores" / "scores.parquet"
    scores = pd.read_parquet(path)
    rng = np.random.default_rng(seed)
    systems = scores.drop_duplicates("system")[["system", "model", "condition"]]
    rows = pd.concat([systems.assign(conversation_id=f"u-c{c:03d}", persona_id=f"u{c:03d}",
                                     scenario_id="scenario_01") for c in range(extra)], ignore_index=True)
    rows = rows.assign(cosine=rng.normal(0.7, 0.05, len(rows)), rouge_l=rng.normal(0.2, 0.05, len(rows)),
                       judge_overall=rng.normal(4.5, 1.2, len(rows)))
    pd.concat([scores, rows[scores.columns]], ignore_index=True).to_parquet(path)


def test_report_shows_ppi_beside_human_only(tmp_path: Path, run_factory: Callable[[Path], Path]) -> None:
    run = run_factory(tmp_path / "study")
    _with_unrated_conversations(run)
    result = report(ReportConfig(run=str(run)))
    html = result.html.read_text()
    assert 'id="ppi"' in html and "Prediction-powered estimates" in html
    assert 'data-figure="ppi"' in html and "ppi" in result.figures
    for key in ("ppi_means", "ppi_differences"):
        assert key in result.tables and (run / "report" / "tables" / f"{key}.csv").is_file()
    means = pd.read_csv(run / "report" / "tables" / "ppi_means.csv")
    assert {"human_only", "ppi", "lambda", "effective_n", "n_rated", "n_unrated"} <= set(means.columns)
    assert (means["n_unrated"] == 36).all() and (means["n_rated"] == 12).all()
    assert "judge_overall" in html  # the predictor is named


def test_report_says_when_every_conversation_is_rated(full_run: Path) -> None:
    result = report(ReportConfig(run=str(full_run)), out=full_run / "report-ppi")
    html = result.html.read_text()
    assert 'id="ppi"' in html and "n = N = 12" in html
