"""Means with 95% confidence intervals from a bootstrap clustered by persona, per table cell.

Conversations of one persona are not independent (same voice, same trauma), so the bootstrap
resamples *personas* with replacement and takes the mean over all their conversations
(percentile interval; Davison and Hinkley 1997, ch. 3.8 on resampling clusters). With one
conversation per persona, as in a single-scenario cell, this is the ordinary bootstrap. A cell
with fewer than two personas gets no interval (NaN). Each cell's random stream is derived from
the run seed and the cell's key, so adding a system or a metric leaves other cells' intervals
unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

__all__ = ["OVERALL", "aggregate_scores", "cluster_bootstrap_ci"]

OVERALL = "ALL"  # the scenario_id of the overall rows


def cluster_bootstrap_ci(values: Sequence[float] | Any, clusters: Sequence[Any] | Any, *,
                         n_resamples: int = 2000, confidence: float = 0.95,
                         seed: int | Sequence[int] = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` and a percentile CI resampling ``clusters``."""
    import numpy as np
    import pandas as pd

    x = np.asarray(values, dtype=float)
    keep = ~np.isnan(x)
    x = x[keep]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    codes, _ = pd.factorize(np.asarray(clusters, dtype=object)[keep])
    k = int(codes.max()) + 1
    sums = np.bincount(codes, weights=x, minlength=k)
    counts = np.bincount(codes, minlength=k).astype(float)
    mean = float(x.mean())
    if k < 2:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    # resample in chunks so memory stays small for many clusters
    boot = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // k)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, k, size=(stop - start, k))
        boot[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return mean, float(low), float(high)


def _cell_seed(seed: int, key: Sequence[str]) -> list[int]:
    digest = hashlib.sha256("\x1f".join(key).encode()).digest()
    return [seed, int.from_bytes(digest[:8], "little")]


def aggregate_scores(scores: Any, metrics: Sequence[str], *, cluster: str = "persona_id",
                     n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> Any:
    """Long table: per system x condition x scenario (and overall, scenario ``ALL``) x metric:
    mean, ci_low, ci_high, n (scored rows) and n_clusters (personas)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    keys = ["system", "model", "condition"]
    for (system, model, condition), group in scores.groupby(keys, sort=True, dropna=False):
        cells = [(OVERALL, group)] + [(str(s), g) for s, g in group.groupby("scenario_id", sort=True)]
        for scenario, cell in cells:
            for metric in metrics:
                if metric not in cell:
                    continue
                col = pd.to_numeric(cell[metric], errors="coerce").astype(float)
                valid = col.notna()
                mean, low, high = cluster_bootstrap_ci(
                    col[valid].to_numpy(), cell.loc[valid, cluster].to_numpy(), n_resamples=n_resamples,
                    confidence=confidence, seed=_cell_seed(seed, (str(system), scenario, metric)))
                rows.append({"system": system, "model": model, "condition": condition, "scenario_id": scenario,
                             "metric": metric, "mean": mean, "ci_low": low, "ci_high": high,
                             "n": int(valid.sum()), "n_clusters": int(cell.loc[valid, cluster].nunique())})
    return pd.DataFrame(rows, columns=["system", "model", "condition", "scenario_id", "metric", "mean",
                                       "ci_low", "ci_high", "n", "n_clusters"])
