"""Ordinal comparisons: a proportional-odds model with rater- and item-clustered errors.

Ratings on a 1-7 scale are ordinal. The natural model is a cumulative link mixed model (CLMM,
R's ``ordinal::clmm``) with random intercepts for rater and item. Python has no maintained
CLMM (statsmodels' ``OrderedModel`` has no random effects), so tidekit fits the proportional-
odds (cumulative logit) model with ``OrderedModel`` and makes its inference rater-aware with a
two-way cluster-robust sandwich (Cameron, Gelbach & Miller 2011): clusters by rater and by
item, minus the per-rating (heteroskedasticity-robust) part. This is a population-averaged
model: its log odds ratios are smaller in magnitude than a CLMM's subject-specific ones, but
its standard errors do not pretend that ratings are independent. The tests compare its
estimates with R's ``ordinal::clm`` and document the CLMM script (docs/analysis.md) for users
with R.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._design import build_design, codes
from tidekit.analysis._results import TestResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["OrdinalFit", "fit_ordinal", "ordinal_comparison"]


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class OrdinalFit:
    """Cumulative-logit fit: ``P(y <= j) = F(tau_j - x b)``; positive b means higher ratings."""

    def __init__(self, beta: np.ndarray, tau: np.ndarray, names: list[str], vcov: np.ndarray,
                 vcov_naive: np.ndarray, n: int) -> None:
        self.beta, self.tau, self.names, self.vcov, self.vcov_naive, self.n = beta, tau, names, vcov, vcov_naive, n


def _scores(params: np.ndarray, X: np.ndarray, y: np.ndarray, n_cat: int) -> np.ndarray:
    """Per-observation gradient of the log-likelihood in (beta, tau)."""
    k = X.shape[1]
    beta, tau = params[:k], params[k:]
    cut = np.concatenate([[-np.inf], tau, [np.inf]])
    eta = X @ beta
    a, b = cut[y + 1] - eta, cut[y] - eta
    Fa, Fb = _logistic(a), _logistic(b)
    fa, fb = Fa * (1 - Fa), Fb * (1 - Fb)
    P = np.maximum(Fa - Fb, 1e-300)
    S = np.zeros((len(y), k + n_cat - 1))
    S[:, :k] = (-(fa - fb) / P)[:, None] * X
    rows = np.arange(len(y))
    up, lo = y, y - 1  # tau index of the upper and lower cut of each observation
    m_up, m_lo = up < n_cat - 1, lo >= 0
    S[rows[m_up], k + up[m_up]] += (fa / P)[m_up]
    S[rows[m_lo], k + lo[m_lo]] -= (fb / P)[m_lo]
    return S


def fit_ordinal(y: np.ndarray, X: np.ndarray, names: list[str], clusters: list[np.ndarray]) -> OrdinalFit:
    """Fit the proportional-odds model (``X`` without intercept) and its multi-way clustered vcov.

    ``y`` holds category indices 0..J-1 (J >= 3 used); ``clusters`` holds one integer code
    array per clustering dimension; the per-observation intersection is subtracted once.
    """
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    n_cat = int(y.max()) + 1
    model = OrderedModel(y, X, distr="logit")
    res = model.fit(method="bfgs", disp=False, maxiter=1000)
    k = X.shape[1]
    params = np.asarray(res.params)
    tau = np.asarray(model.transform_threshold_params(params))[1:-1]
    theta = np.concatenate([params[:k], tau])
    S = _scores(theta, X, y, n_cat)
    # Hessian of the summed log-likelihood by central differences of the analytic score.
    h = 1e-5
    H = np.zeros((len(theta), len(theta)))
    for i in range(len(theta)):
        e = np.zeros(len(theta))
        e[i] = h
        H[:, i] = (_scores(theta + e, X, y, n_cat).sum(0) - _scores(theta - e, X, y, n_cat).sum(0)) / (2 * h)
    H = (H + H.T) / 2
    Hinv = np.linalg.inv(-H)
    meat = -(S.T @ S)  # the intersection (one rating) is subtracted once
    for c in clusters:
        G = int(c.max()) + 1
        Sg = np.zeros((G, S.shape[1]))
        np.add.at(Sg, c, S)
        meat += (G / (G - 1)) * (Sg.T @ Sg)
    V = Hinv @ meat @ Hinv
    w, Q = np.linalg.eigh((V + V.T) / 2)  # two-way CRVE can be indefinite: clip (CGM 2011)
    V = (Q * np.maximum(w, 0)) @ Q.T
    return OrdinalFit(theta[:k], tau, names, V[:k, :k], Hinv[:k, :k], len(y))


def ordinal_comparison(df: pd.DataFrame, factor: str, ref: str, config: AnalysisConfig, role: str = "sensitivity",
                       analysis: str | None = None, family: str | None = None) -> list[TestResult]:
    """Pairwise log odds ratios between the levels of ``factor`` (proportional odds, clustered SEs).

    The categories are the distinct ratings as they are (half points stay half points; nothing
    is rounded).
    """
    values = df["rating"].to_numpy(float)
    present = np.unique(values)
    if len(present) < 3:
        return []
    y = np.searchsorted(present, values)
    factors = [factor] + (["model"] if factor == "condition" and "model" in df and df["model"].nunique() > 1 else [])
    design = build_design(df, factors, reference={factor: ref})
    X, names = design.X[:, 1:], design.names[1:]
    keep = np.linalg.matrix_rank(X) == X.shape[1]
    if not keep:
        return []
    fit = fit_ordinal(y, X, names, [codes(df["rater"])[0], codes(df["item"])[0]])
    levels = design.levels[factor]
    out = []
    q = stats.norm.ppf(1 - config.alpha / 2)
    formula = f"rating ~ {' + '.join(factors)} (proportional odds, logit link)"
    for i, a in enumerate(levels):
        for b in levels[i + 1:]:
            L = np.zeros(len(names))
            if b != levels[0]:
                L[names.index(f"{factor}[{b}]")] += 1
            if a != levels[0]:
                L[names.index(f"{factor}[{a}]")] -= 1
            est = float(L @ fit.beta)
            se = float(np.sqrt(L @ fit.vcov @ L))
            naive = float(np.sqrt(L @ fit.vcov_naive @ L))
            z = est / se if se > 0 else np.nan
            out.append(TestResult(
                family=family or f"{factor}/ordinal", analysis=analysis or factor, level="rating", model=formula,
                role=role,
                test="proportional-odds Wald z, two-way (rater, item) cluster-robust SE", term=f"{b} - {a}",
                estimate=est, estimate_kind="log cumulative odds ratio (positive: higher ratings)",
                ci_low=est - q * se, ci_high=est + q * se, ci_level=1 - config.alpha, ci_method="Wald, clustered SE",
                statistic=z, statistic_name="z", p=float(2 * stats.norm.sf(abs(z))), n=len(df),
                n_ratings=len(df), n_raters=int(df["rater"].nunique()), n_items=int(df["item"].nunique()),
                effect_sizes={"odds_ratio": float(np.exp(est))},
                extra={"se_clustered": se, "se_model_based": naive,
                       "design_effect": (se / naive) ** 2 if naive > 0 else None}))
    return out
