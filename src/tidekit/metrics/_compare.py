"""Paired comparisons between systems: Wilcoxon signed-rank, rank-biserial effect, Holm.

Which pairs: each model's fine-tuned system against its zero-shot system (all metrics), and
each system against the ``reference`` system on the metrics that do not use the reference
(judge scores, distinct-n; a reference scored against itself is trivially perfect on the
others). Pairs are matched by persona (default: each persona's mean over the conversations both
systems answered, so correlated conversations of one persona count once) or by conversation.

For each pair and metric: the two means, the mean and median paired difference (A - B), the
two-sided Wilcoxon signed-rank test (scipy, zero differences dropped: ``zero_method="wilcox"``),
the matched-pairs rank-biserial correlation r = (W+ - W-) / (W+ + W-) over the non-zero
differences (Kerby 2014; +1 means A is higher in every pair), and Holm's step-down adjusted p
over all comparisons of the same metric.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Literal

from tidekit._stats import adjust
from tidekit.scenarios import EMPATHY_FACTOR_IDS

__all__ = ["REFERENCE_FREE", "compare_systems", "holm", "paired_test", "rank_biserial"]

# metrics that do not compare a reply with the reference, so "system vs reference" is meaningful
REFERENCE_FREE = ("distinct_1", "distinct_2", *(f"judge_{f}" for f in EMPATHY_FACTOR_IDS), "judge_overall")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values; NaN stays NaN and is not counted.

    A float-typed view of :func:`tidekit._stats.adjust`, the one Holm in tidekit
    (imported here, not copied, so the two tables can never disagree).
    """
    return [float("nan") if q is None else q for q in adjust(list(pvalues), "holm")]


def rank_biserial(diffs: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped)."""
    import numpy as np
    from scipy.stats import rankdata

    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return float("nan")
    ranks = rankdata(np.abs(d))
    w_plus, w_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((w_plus - w_minus) / (w_plus + w_minus))


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Wilcoxon signed-rank of a - b with effect sizes; NaN statistics when undefined."""
    import numpy as np
    from scipy.stats import wilcoxon

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    out = {"n_pairs": float(d.size), "mean_a": float(x.mean()) if x.size else float("nan"),
           "mean_b": float(y.mean()) if y.size else float("nan"),
           "mean_diff": float(d.mean()) if d.size else float("nan"),
           "median_diff": float(np.median(d)) if d.size else float("nan"),
           "statistic": float("nan"), "p_value": float("nan"), "rank_biserial": rank_biserial(d)}
    if np.count_nonzero(d) >= 1 and d.size >= 2:
        res = wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
    return out


def _pairs(systems: Sequence[tuple[str, str, str]], reference: str) -> list[tuple[str, str, str]]:
    """(kind, system A, system B) for every comparison to run."""
    by_model: dict[str, dict[str, str]] = {}
    for system, model, condition in systems:
        by_model.setdefault(model, {})[condition] = system
    out = [("fine_tuned_vs_zero_shot", conds["fine_tuned"], conds["zero_shot"])
           for _, conds in sorted(by_model.items()) if "fine_tuned" in conds and "zero_shot" in conds]
    names = sorted(s for s, _, _ in systems)
    if reference in names:
        out += [("vs_reference", s, reference) for s in names if s != reference]
    return out


def compare_systems(scores: Any, metrics: Sequence[str], *, unit: Literal["persona", "conversation"] = "persona",
                    reference: str = "reference", reference_free: Collection[str] = REFERENCE_FREE) -> Any:
    """The comparisons table (one row per comparison x metric), Holm-adjusted within metric.

    Only ``reference_free`` metrics are compared between a system and the reference replies.
    """
    import pandas as pd

    systems = sorted({(str(s), str(m), str(c)) for s, m, c in
                      scores[["system", "model", "condition"]].drop_duplicates().itertuples(index=False)})
    key = "persona_id" if unit == "persona" else "conversation_id"
    rows: list[dict[str, Any]] = []
    for kind, sys_a, sys_b in _pairs(systems, reference):
        for metric in metrics:
            if metric not in scores or (kind == "vs_reference" and metric not in reference_free):
                continue
            a = scores[scores.system == sys_a][["conversation_id", "persona_id", metric]].dropna()
            b = scores[scores.system == sys_b][["conversation_id", "persona_id", metric]].dropna()
            both = a.merge(b, on=["conversation_id", "persona_id"], suffixes=("_a", "_b"))
            if unit == "persona":
                both = both.groupby(key, sort=True)[[f"{metric}_a", f"{metric}_b"]].mean().reset_index()
            if both.empty:
                continue
            stats = paired_test(both[f"{metric}_a"].to_numpy(), both[f"{metric}_b"].to_numpy())
            rows.append({"comparison": kind, "system_a": sys_a, "system_b": sys_b, "metric": metric,
                         "unit": unit, **stats})
    columns = ["comparison", "system_a", "system_b", "metric", "unit", "n_pairs", "mean_a", "mean_b",
               "mean_diff", "median_diff", "statistic", "p_value", "rank_biserial", "p_holm"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c != "p_holm"])
    table["n_pairs"] = table["n_pairs"].astype(int)
    table["p_holm"] = float("nan")
    for _, idx in table.groupby("metric").groups.items():
        table.loc[idx, "p_holm"] = holm(table.loc[idx, "p_value"].tolist())
    return table[columns]
