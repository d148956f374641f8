"""Effect sizes, confidence intervals and multiple-comparison corrections.

Each function states its formula, so the tests can check it by hand:

- epsilon squared (Kruskal-Wallis): ``H / ((n^2 - 1) / (n + 1))`` = ``H / (n - 1)``
  (Tomczak & Tomczak 2014);
- rank-biserial correlation (Mann-Whitney): ``2 U_1 / (n_1 n_2) - 1``, positive when group 1
  ranks higher; it equals Cliff's delta ``P(x > y) - P(x < y)``;
- matched-pairs rank-biserial (Wilcoxon): ``(T+ - T-) / (T+ + T-)``;
- Cramer's V: ``sqrt(chi2 / (n (min(r, c) - 1)))``;
- Spearman CI: Fisher z with the Bonett-Wright (2000) standard error ``sqrt((1 + r^2/2)/(n - 3))``;
- proportion CI: Wilson score interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from tidekit._stats import adjust

__all__ = [
    "adjust",
    "cliffs_delta",
    "cramers_v",
    "epsilon_squared",
    "largest_difference",
    "matched_rank_biserial",
    "mean_ci",
    "ordered_trend",
    "rank_biserial",
    "spearman_ci",
    "welch_diff_ci",
    "wilson",
]


def epsilon_squared(h: float, n: int) -> float:
    """Epsilon squared effect size of a Kruskal-Wallis H over n observations."""
    return float(h / ((n * n - 1) / (n + 1)))


def rank_biserial(u1: float, n1: int, n2: int) -> float:
    """Rank-biserial correlation from the Mann-Whitney U of group 1."""
    return float(2.0 * u1 / (n1 * n2) - 1.0)


def cliffs_delta(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Cliff's delta: P(X > Y) - P(X < Y), computed by ranks (O(n log n))."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ys = np.sort(y)
    greater = np.searchsorted(ys, x, side="left").sum()
    less = (len(ys) - np.searchsorted(ys, x, side="right")).sum()
    return float((greater - less) / (len(x) * len(y)))


def matched_rank_biserial(diff: Sequence[float] | np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped)."""
    d = np.asarray(diff, float)
    d = d[d != 0]
    if not len(d):
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    tp, tm = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((tp - tm) / (tp + tm))


def cramers_v(chi2: float, n: int, shape: tuple[int, int]) -> float:
    """Cramer's V of a chi-square statistic from an r x c table with n counts."""
    k = min(shape) - 1
    return float(np.sqrt(chi2 / (n * k))) if k > 0 and n > 0 else float("nan")


def spearman_ci(rho: float, n: int, level: float = 0.95) -> tuple[float | None, float | None]:
    """Fisher-z CI of a Spearman correlation (Bonett-Wright SE); None when n < 4."""
    if n < 4 or not np.isfinite(rho):
        return None, None
    r = float(np.clip(rho, -0.999999, 0.999999))
    se = np.sqrt((1 + r * r / 2) / (n - 3))
    z = np.arctanh(r)
    q = stats.norm.ppf(0.5 + level / 2)
    return float(np.tanh(z - q * se)), float(np.tanh(z + q * se))


def mean_ci(x: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean with a t confidence interval (None when fewer than two values)."""
    x = np.asarray(x, float)
    m = float(x.mean())
    if len(x) < 2:
        return m, None, None
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return m, m - half, m + half


def welch_diff_ci(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean difference x - y with a Welch t interval."""
    d = float(np.mean(x) - np.mean(y))
    if len(x) < 2 or len(y) < 2:
        return d, None, None
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    se = np.sqrt(vx + vy)
    if se == 0:
        return d, d, d
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    q = stats.t.ppf(0.5 + level / 2, df)
    return d, d - q * se, d + q * se


def wilson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def largest_difference(groups: dict[str, np.ndarray], level: float = 0.95
                       ) -> tuple[str, str, float, float | None, float | None]:
    """(b, a, mean(b) - mean(a), Welch CI) for the two groups whose means differ most (b the higher).

    The estimate of an omnibus test across several groups; its interval is that pair's Welch
    interval, not adjusted for having chosen the pair (the pairwise rows give every pair).
    Groups of one rater have no interval, so the pair is chosen among groups of two or more
    where at least two such groups exist (a study with one non-binary rater still gets a CI).
    """
    means = {k: float(np.mean(v)) for k, v in groups.items() if len(v)}
    if sum(len(groups[k]) >= 2 for k in means) >= 2:
        means = {k: m for k, m in means.items() if len(groups[k]) >= 2}
    hi_k, lo_k = max(means, key=lambda k: means[k]), min(means, key=lambda k: means[k])
    d, lo, hi = welch_diff_ci(np.asarray(groups[hi_k], float), np.asarray(groups[lo_k], float), level)
    return hi_k, lo_k, d, lo, hi


def ordered_trend(values: list[np.ndarray], level: float = 0.95) -> dict[str, float | None]:
    """Trend of a rater-level value across ordered groups (lowest first).

    Kendall's tau-b between each unit's group rank and its value (the Jonckheere-Terpstra
    statistic with a tie correction; scipy's p-value), and the least-squares slope per level step
    with a t interval (n - 2 df), as the effect in rating points.
    """
    x = np.concatenate([np.full(len(v), i, float) for i, v in enumerate(values)])
    y = np.concatenate([np.asarray(v, float) for v in values])
    tau = stats.kendalltau(x, y, variant="b")
    n = len(y)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (y - y.mean()) / sxx) if sxx > 0 else float("nan")
    lo = hi = None
    if n > 2 and sxx > 0:
        resid = y - y.mean() - slope * xc
        se = float(np.sqrt(resid @ resid / (n - 2) / sxx))
        q = float(stats.t.ppf(0.5 + level / 2, n - 2))
        lo, hi = slope - q * se, slope + q * se
    return {"tau": float(tau.statistic), "p": float(tau.pvalue), "slope": slope, "ci_low": lo, "ci_high": hi,
            "n": float(n)}
