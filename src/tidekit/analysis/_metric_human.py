"""How well automatic metrics track human ratings: Spearman correlations with CIs.

Scores (``RUN/scores/scores.parquet``: one row per conversation and system) are joined to the
mean human rating of the same (conversation_id, system). Correlations are reported at two
levels: item (each conversation-system pair is one point) and system (each system's mean
metric against its mean rating; few points, so wide intervals). A metric that cannot be
correlated at a level (too few values, or constant) is listed in the skipped reasons with why,
never dropped silently; so is a requested metric missing from the scores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from tidekit.analysis._effects import spearman_ci
from tidekit.analysis._results import TestResult
from tidekit.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ID_COLUMNS", "load_scores", "metric_columns", "metric_human"]

ID_COLUMNS = ("conversation_id", "persona_id", "scenario_id", "system", "model", "condition", "split",
              "schema_version", "error")
# numeric columns of a scores table that describe the persona, not the reply
NOT_METRICS = ("age",)


def load_scores(path: str | Path) -> pd.DataFrame:
    """Read scores from ``scores.parquet`` (or .csv), or a scores folder holding it."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        for name in ("scores.parquet", "scores.csv"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise DataError(f"{path}: no scores.parquet here; run 'tidekit score' first or give the file")
    if not path.is_file():
        raise DataError(f"{path}: no such scores file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        df = pd.read_parquet(path)
        named = (pq.read_schema(path).metadata or {}).get(b"tidekit.metric_columns")
        if named:
            df.attrs["metric_columns"] = json.loads(named)
    else:
        df = pd.read_csv(path)
    missing = [c for c in ("conversation_id", "system") if c not in df.columns]
    if missing:
        raise DataError(f"{path}: scores need columns {', '.join(missing)} to join ratings "
                        f"(found: {', '.join(map(str, df.columns))})")
    return df


def metric_columns(scores: pd.DataFrame, wanted: list[str] | None = None) -> list[str]:
    """Numeric metric columns: ``wanted`` (those present), else the ones the scoring run named
    (``scores.attrs["metric_columns"]``, set by :func:`load_scores`), else every numeric column
    that is not an id, a persona facet or a count (``*_n``)."""
    import pandas as pd

    named = scores.attrs.get("metric_columns")
    numeric = [c for c in scores.columns if c not in ID_COLUMNS and pd.api.types.is_numeric_dtype(scores[c])
               and not pd.api.types.is_bool_dtype(scores[c])]
    if wanted is not None:
        return [c for c in wanted if c in numeric]
    if named:
        return [c for c in named if c in numeric]
    return [c for c in numeric if c not in NOT_METRICS and not c.endswith("_n")]


def metric_human(df: pd.DataFrame, scores: pd.DataFrame, metrics: list[str] | None,
                 alpha: float) -> tuple[list[TestResult], list[str]]:
    """Spearman correlation of each metric with the mean human rating, at item and system level."""
    notes: list[str] = []
    if not {"conversation", "system"} <= set(df.columns):
        return [], ["metric-human correlation skipped: ratings have no conversation or system column"]
    cols = metric_columns(scores, metrics)
    if metrics is not None:
        absent = [m for m in metrics if m not in cols]
        if absent:
            notes.append(f"metric column(s) not in the scores: {', '.join(absent)}")
    if not cols:
        return [], [*notes, "metric-human correlation skipped: no numeric metric columns in the scores"]
    human = (df.dropna(subset=["conversation", "system"]).groupby(["conversation", "system"])["rating"]
             .agg(["mean", "size"]).reset_index()
             .rename(columns={"conversation": "conversation_id", "mean": "human", "size": "n_ratings"}))
    s = scores.copy()
    s["conversation_id"] = s["conversation_id"].astype(str)
    s["system"] = s["system"].astype(str)
    s = s.groupby(["conversation_id", "system"], as_index=False)[cols].mean()
    joined = human.merge(s, on=["conversation_id", "system"], how="inner")
    unmatched = len(human) - len(joined)
    if unmatched:
        notes.append(f"{unmatched} of {len(human)} rated (conversation, system) pairs have no scores")
    if len(joined) < 3:
        return [], [*notes, f"metric-human correlation skipped: only {len(joined)} rated pairs have scores"]
    tests = []
    level = 1 - alpha
    by_system = joined.groupby("system")[["human", *cols]].mean()
    for m in cols:
        for unit, data in (("item", joined[["human", m]].dropna()), ("system", by_system[["human", m]].dropna())):
            n = len(data)
            why = (f"{n} {unit}(s) with a value (need 3)" if n < 3 else
                   "the metric is constant" if data[m].nunique() < 2 else
                   "the mean rating is constant" if data["human"].nunique() < 2 else None)
            if why is not None:
                notes.append(f"metric-human correlation of {m} at {unit} level skipped: {why} "
                             "(a rank correlation is undefined)")
                continue
            rho, p = stats.spearmanr(data[m], data["human"])
            lo, hi = spearman_ci(float(rho), n, level)
            tests.append(TestResult(
                family=f"metric_human/{unit}", analysis="metric_human", test="Spearman rank correlation",
                term=m, level=unit, estimate=float(rho), estimate_kind="Spearman rho (metric vs mean rating)",
                ci_low=lo, ci_high=hi, ci_level=level if lo is not None else None,
                ci_method="Fisher z, Bonett-Wright SE" if lo is not None else None, statistic=float(rho),
                statistic_name="rho", p=float(p) if np.isfinite(p) else None, n=n,
                n_ratings=int(joined.loc[data.index, "n_ratings"].sum()) if unit == "item" else int(joined["n_ratings"].sum()),
                flags=[f"only {n} systems: a wide interval"] if unit == "system" and n < 10 else []))
    return tests, notes
