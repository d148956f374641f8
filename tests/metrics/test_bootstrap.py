"""The persona-clustered bootstrap: coverage by simulation, and hand-checked cells."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tidekit.metrics import aggregate_scores, cluster_bootstrap_ci


def _simulate(rng: np.random.Generator, personas: int = 30, per_persona: int = 4) -> tuple[np.ndarray, np.ndarray]:
    # true mean 0; persona effects (sd 1) make conversations of one persona correlated (ICC 0.5)
    effects = rng.normal(0.0, 1.0, personas)
    clusters = np.repeat(np.arange(personas), per_persona)
    values = effects[clusters] + rng.normal(0.0, 1.0, clusters.size)
    return values, clusters


def test_clustered_ci_covers_the_true_mean_about_95_percent() -> None:
    rng = np.random.default_rng(2024)
    sims, hits, naive_hits = 400, 0, 0
    for i in range(sims):
        values, clusters = _simulate(rng)
        _, low, high = cluster_bootstrap_ci(values, clusters, n_resamples=1000, seed=i)
        hits += low <= 0.0 <= high
        # the same data resampled by conversation, ignoring personas
        _, nlow, nhigh = cluster_bootstrap_ci(values, np.arange(values.size), n_resamples=1000, seed=i)
        naive_hits += nlow <= 0.0 <= nhigh
    coverage, naive = hits / sims, naive_hits / sims
    # binomial sd at 95% over 400 simulations is 1.1 points; percentile intervals with 30
    # clusters run slightly narrow, so accept 91-98%
    assert 0.91 <= coverage <= 0.98, coverage
    # ignoring the clustering undercovers badly (about 80% here): the test can tell them apart
    assert naive < 0.88, naive


def test_single_cluster_has_no_interval_and_nan_values_are_ignored() -> None:
    mean, low, high = cluster_bootstrap_ci([1.0, 2.0, float("nan")], ["p1", "p1", "p1"])
    assert mean == 1.5 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in cluster_bootstrap_ci([], []))


def test_interval_is_reproducible_and_brackets_the_mean() -> None:
    values, clusters = _simulate(np.random.default_rng(1))
    a = cluster_bootstrap_ci(values, clusters, seed=5)
    assert a == cluster_bootstrap_ci(values, clusters, seed=5)
    assert a[1] < a[0] < a[2]


def test_aggregate_cells_overall_rows_and_counts() -> None:
    scores = pd.DataFrame({
        "system": ["m:zero_shot"] * 4, "model": ["m"] * 4, "condition": ["zero_shot"] * 4,
        "scenario_id": ["a", "a", "b", "b"], "persona_id": ["1", "2", "1", "2"],
        "cosine": [0.2, 0.4, 0.6, float("nan")]})
    agg = aggregate_scores(scores, ["cosine"], n_resamples=200)
    overall = agg[agg.scenario_id == "ALL"].iloc[0]
    assert overall["mean"] == pytest.approx(0.4) and overall["n"] == 3 and overall["n_clusters"] == 2
    b = agg[agg.scenario_id == "b"].iloc[0]
    assert b["mean"] == pytest.approx(0.6) and b["n"] == 1 and math.isnan(b["ci_low"])
    assert list(agg.columns) == ["system", "model", "condition", "scenario_id", "metric", "mean", "ci_low",
                                 "ci_high", "n", "n_clusters"]
