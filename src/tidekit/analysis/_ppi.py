"""Prediction-powered estimates: human ratings on a rated sample plus an automatic score on every reply.

The estimator is PPI++ (Angelopoulos, Bates, Fannjiang, Jordan and Zrnic, Science 2023;
Angelopoulos, Duchi and Zrnic 2024). For a target with a human value ``Y`` and a prediction
``f`` per unit, ``n`` rated units and ``N`` units with only the prediction::

    theta = lambda * mean_N(f) + mean_n(Y - lambda * f)
    var   = lambda^2 var_N(f) / N + var_n(Y - lambda * f) / n
    lambda = cov_n(Y, f) / ((1 + n / N) var_{n+N}(f))          (power tuning, from the data)

``lambda = 0`` is the human-only mean; the tuned lambda minimises the variance, so the
estimate is never worse than human-only asymptotically. With ``interval="z"`` and
``clip=(0, 1)`` the numbers equal ``ppi_py.ppi_mean_ci`` (``tests/analysis/test_ppi.py``);
tidekit's default leaves lambda unclipped (a cosine in [0, 1] predicting a 1-7 rating needs
lambda far above 1) and uses a t quantile with n - 1 df and unbiased variances, a small-sample
correction that matters for a pilot of ten conversations and is negligible at 200.

The unit is the **conversation** (the rated conversations are the sampled clusters). A reply's
human value is the mean of its ratings after removing each rater's leniency (rater-centred:
the rater terms of a least-squares fit of rating ~ reply + rater). The raters' mean leniency
is common to every mean; its variance is added to the means' (it cancels in differences). A
system's mean is the PPI mean of its per-conversation values; a paired difference of two
systems is the PPI mean of the per-conversation differences, so the conversation effect
cancels. A multi-score predictor is a least-squares fit of the reply value on the scores,
cross-fitted over conversation folds (Zrnic and Candes 2024): each rated conversation is
predicted by the fit that did not see it, each unrated one by the average of the fold fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MeanEstimate", "RaterCentring", "cross_fit", "ppi_mean", "ppi_mean_stratified", "ppi_ols",
           "rater_centred_means", "rater_offsets", "tuned_lambda"]

Interval = Literal["t", "z"]


@dataclass(frozen=True)
class MeanEstimate:
    """A PPI++ mean (or difference) with the human-only mean of the same rated units beside it."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    lam: float
    human: float
    human_se: float
    human_ci_low: float
    human_ci_high: float
    n: int
    N: int
    correlation: float | None  # of Y and f on the rated units
    df: float | None = None  # t degrees of freedom of the PPI interval (None: normal)
    human_df: float | None = None  # and of the human-only interval

    @property
    def ess_ratio(self) -> float:
        """Human-only variance over PPI variance: how many times the rated units the scores were worth."""
        return (self.human_se / self.se) ** 2 if self.se > 0 else 1.0

    @property
    def width_ratio(self) -> float:
        """Human-only interval width over the PPI width."""
        return self.human_se / self.se if self.se > 0 else 1.0

    def p_value(self, null: float = 0.0, human: bool = False) -> float:
        """Two-sided p-value of ``estimate == null``, with the interval's own quantile (t or normal)."""
        est, se, df = (self.human, self.human_se, self.human_df) if human else (self.estimate, self.se, self.df)
        if se <= 0:
            return 0.0 if est != null else 1.0
        z = abs(est - null) / se
        return float(2 * (stats.t.sf(z, df) if df is not None else stats.norm.sf(z)))


def _quantile(alpha: float, df: float | None) -> float:
    return float(stats.norm.ppf(1 - alpha / 2) if df is None else stats.t.ppf(1 - alpha / 2, df))


def tuned_lambda(y: np.ndarray, f: np.ndarray, f_unlabeled: np.ndarray,
                 clip: tuple[float, float] | None = None) -> float:
    """The variance-minimising lambda of the PPI++ mean (ppi_py's ``_calc_lam_glm`` for a mean):
    ``cov_n(Y, f) / ((1 + n/N) var(f over rated and unrated))``; 0 when there is nothing unrated
    or the prediction is constant."""
    n, N = len(y), len(f_unlabeled)
    if N == 0 or n < 2:
        return 0.0
    cov = float(np.mean((y - y.mean()) * (f - f.mean())))  # ppi_py: 1/n
    var = float(np.var(np.concatenate([f, f_unlabeled]), ddof=1))
    if var <= 0:
        return 0.0
    lam = cov / ((1 + n / N) * var)
    return float(np.clip(lam, *clip)) if clip is not None else lam


def ppi_mean(y: np.ndarray, f: np.ndarray, f_unlabeled: np.ndarray, *, alpha: float = 0.05,
             lam: float | None = None, clip: tuple[float, float] | None = None,
             interval: Interval = "t", extra_var: float = 0.0) -> MeanEstimate:
    """PPI++ mean of ``y`` (rated units, with predictions ``f``) using predictions ``f_unlabeled``
    of the unrated units; ``lam=None`` tunes lambda from the data (module docstring).
    ``extra_var`` is a variance common to the human values of every unit (the raters' mean
    leniency), added to the PPI and the human-only variance alike."""
    y, f, fu = (np.asarray(a, dtype=float) for a in (y, f, f_unlabeled))
    if y.shape != f.shape or y.ndim != 1:
        raise ValueError(f"y and f must be 1-d of one length, got {y.shape} and {f.shape}")
    n, N = len(y), len(fu)
    if n < 2:
        raise ValueError(f"a mean needs at least 2 rated units, got {n}")
    tuned = lam is None and N > 0
    if lam is None:
        lam = tuned_lambda(y, f, fu, clip)
    if N == 0:
        lam = 0.0
    # 't': unbiased variances and t quantiles; a lambda tuned on the same units is one more fitted
    # coefficient, so the rectifier then has n - 2 df (the regression estimator of survey sampling)
    small = interval == "t"
    ddof_h = 1 if small else 0
    ddof_r = (2 if tuned and n > 3 else 1) if small else 0
    df_h = float(n - ddof_h) if small else None
    df_r = float(n - ddof_r) if small else None
    rect = y - lam * f
    est = float((lam * fu).mean() + rect.mean()) if N else float(y.mean())
    imputed_var = float(np.var(lam * fu, ddof=ddof_h)) / N if ddof_h < N else 0.0
    se = math.sqrt(imputed_var + float(np.var(rect, ddof=ddof_r)) / n + extra_var)
    human_se = math.sqrt(float(np.var(y, ddof=ddof_h)) / n + extra_var)
    human = float(y.mean())
    q, q_h = _quantile(alpha, df_r), _quantile(alpha, df_h)
    corr = None
    if np.std(y) > 0 and np.std(f) > 0:
        corr = float(np.corrcoef(y, f)[0, 1])
    return MeanEstimate(estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se, lam=float(lam),
                        human=human, human_se=human_se, human_ci_low=human - q_h * human_se,
                        human_ci_high=human + q_h * human_se, n=n, N=N, correlation=corr, df=df_r, human_df=df_h)


def ppi_mean_stratified(y: np.ndarray, f: np.ndarray, f_unlabeled: np.ndarray, strata: np.ndarray,
                        strata_unlabeled: np.ndarray, *, alpha: float = 0.05, interval: Interval = "t",
                        extra_var: float = 0.0) -> MeanEstimate:
    """PPI++ mean over a stratified sample: per stratum h the rated units are a simple random
    sample of its ``n_h + N_h`` units; the target is the mean over all units, each stratum weighted
    by its share ``W_h = (n_h + N_h) / M``. One lambda for every stratum minimises the estimated
    variance ``sum_h W_h^2 (lambda^2 var(f_unrated,h)/N_h + var(Y_h - lambda f_h)/n_h)``, a
    quadratic in lambda: lambda = B / A with ``A = sum W_h^2 (var(f_unrated,h)/N_h +
    var(f_h)/n_h)`` and ``B = sum W_h^2 cov(Y_h, f_h)/n_h`` (a stratum with one unrated unit uses
    the var(f) of all its units). A stratum with every unit rated contributes its plain mean. With
    one stratum the estimate is :func:`ppi_mean`'s at that lambda (ppi_py's tuned lambda replaces
    the two variances of f by their pooled value). Every stratum needs at least 2 rated units."""
    y, f, fu = (np.asarray(a, dtype=float) for a in (y, f, f_unlabeled))
    sy, su = np.asarray(strata, dtype=object), np.asarray(strata_unlabeled, dtype=object)
    if not (y.shape == f.shape == sy.shape) or fu.shape != su.shape:
        raise ValueError("y, f and strata (and f_unlabeled and strata_unlabeled) must have one length")
    levels = sorted(set(sy.tolist()))
    if set(su.tolist()) - set(levels):
        raise ValueError("unrated units in a stratum with no rated unit: the sample cannot speak for them")
    small = interval == "t"
    dd = 1 if small else 0
    M = len(y) + len(fu)
    parts = []
    for h in levels:
        yh, fh, fuh = y[sy == h], f[sy == h], fu[su == h]
        if len(yh) < 2:
            raise ValueError(f"stratum {h!r} has {len(yh)} rated unit(s); a stratified mean needs 2 in each")
        w = (len(yh) + len(fuh)) / M
        var_u = float(np.var(fuh, ddof=dd)) if len(fuh) > 1 else float(np.var(np.concatenate([fh, fuh]), ddof=1))
        cov = float(np.cov(yh, fh, ddof=dd)[0, 1])
        parts.append((w, yh, fh, fuh, var_u, cov))
    a = sum(w * w * (vu / len(fuh) + float(np.var(fh, ddof=dd)) / len(yh))
            for w, yh, fh, fuh, vu, _ in parts if len(fuh))
    b = sum(w * w * c / len(yh) for w, yh, fh, fuh, _, c in parts if len(fuh))
    lam = b / a if a > 0 else 0.0
    est = var = human = human_var = 0.0
    for w, yh, fh, fuh, vu, _ in parts:
        rect = yh - lam * fh if len(fuh) else yh
        est += w * ((lam * fuh).mean() + rect.mean() if len(fuh) else yh.mean())
        imputed = lam * lam * vu / len(fuh) if len(fuh) else 0.0
        var += w * w * (imputed + float(np.var(rect, ddof=dd)) / len(yh))
        human += w * yh.mean()
        human_var += w * w * float(np.var(yh, ddof=dd)) / len(yh)
    n, N = len(y), len(fu)
    se, human_se = math.sqrt(var + extra_var), math.sqrt(human_var + extra_var)
    df_h = float(n - len(levels)) if small else None
    df_r = float(n - len(levels) - (1 if N else 0)) if small else None
    q, q_h = _quantile(alpha, df_r), _quantile(alpha, df_h)
    corr = float(np.corrcoef(y, f)[0, 1]) if np.std(y) > 0 and np.std(f) > 0 else None
    return MeanEstimate(estimate=float(est), se=se, ci_low=est - q * se, ci_high=est + q * se, lam=float(lam),
                        human=float(human), human_se=human_se, human_ci_low=human - q_h * human_se,
                        human_ci_high=human + q_h * human_se, n=n, N=N, correlation=corr, df=df_r, human_df=df_h)


@dataclass(frozen=True)
class OLSEstimate:
    """PPI++ least-squares coefficients with normal intervals (one entry per column of X)."""

    coef: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    lam: float


def _ols_fit(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(X, y, rcond=None)[0]


def _ols_stats(theta: np.ndarray, X: np.ndarray, y: np.ndarray, f: np.ndarray, Xu: np.ndarray, fu: np.ndarray,
               use_unlabeled: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n, N = len(y), len(fu)
    if use_unlabeled:
        hessian = (X.T @ X + Xu.T @ Xu) / (N + n)
        grads_hat_u = Xu * (Xu @ theta - fu)[:, None]
    else:
        hessian = X.T @ X / n
        grads_hat_u = np.zeros_like(Xu)
    grads = X * (X @ theta - y)[:, None]
    grads_hat = X * (X @ theta - f)[:, None]
    return grads, grads_hat, grads_hat_u, np.linalg.inv(hessian)


def _ols_lambda(grads: np.ndarray, grads_hat: np.ndarray, grads_hat_u: np.ndarray, inv_h: np.ndarray,
                clip: tuple[float, float] | None) -> float:
    n, N = len(grads), len(grads_hat_u)
    gc, hc = grads - grads.mean(0), grads_hat - grads_hat.mean(0)
    cov = (gc.T @ hc + hc.T @ gc) / n
    var = np.atleast_2d(np.cov(np.concatenate([grads_hat, grads_hat_u]).T))
    lam = float(np.trace(inv_h @ cov @ inv_h) / (2 * (1 + n / N) * np.trace(inv_h @ var @ inv_h)))
    return float(np.clip(lam, *clip)) if clip is not None else lam


def ppi_ols(X: np.ndarray, y: np.ndarray, f: np.ndarray, X_unlabeled: np.ndarray, f_unlabeled: np.ndarray, *,
            alpha: float = 0.05, lam: float | None = None,
            clip: tuple[float, float] | None = (0.0, 1.0)) -> OLSEstimate:
    """PPI++ OLS coefficients of ``y ~ X`` (ppi_py's ``ppi_ols_ci``: one lambda minimising the
    trace of the sandwich variance, sandwich standard errors, normal intervals)."""
    X, Xu = np.asarray(X, float), np.asarray(X_unlabeled, float)
    y, f, fu = (np.asarray(a, float) for a in (y, f, f_unlabeled))
    n, N = len(y), len(fu)

    def point(lam_: float) -> np.ndarray:
        return _ols_fit(Xu, lam_ * fu) + _ols_fit(X, y - lam_ * f)

    if lam is None:
        theta1 = point(1.0)
        lam = _ols_lambda(*_ols_stats(theta1, X, y, f, Xu, fu, True), clip)
        # ppi_py re-estimates lambda once more at the tuned point before the interval
        theta_l = point(lam)
        lam = _ols_lambda(*_ols_stats(theta_l, X, y, f, Xu, fu, True), clip)
    theta = point(lam)
    grads, grads_hat, grads_hat_u, inv_h = _ols_stats(theta, X, y, f, Xu, fu, lam != 0)
    d = X.shape[1]
    var_u = np.atleast_2d(np.cov((lam * grads_hat_u).T)).reshape(d, d)
    var = np.atleast_2d(np.cov((grads - lam * grads_hat).T)).reshape(d, d)
    sigma = inv_h @ (n / N * var_u + var) @ inv_h
    se = np.sqrt(np.diag(sigma) / n)
    q = float(stats.norm.ppf(1 - alpha / 2))
    return OLSEstimate(coef=theta, se=se, ci_low=theta - q * se, ci_high=theta + q * se, lam=float(lam))


def cross_fit(features: np.ndarray, y: np.ndarray, groups: np.ndarray, features_unlabeled: np.ndarray,
              folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted least-squares predictions of ``y`` from ``features`` (an intercept is added).

    Rows are split into ``folds`` folds by ``groups`` (a conversation's replies stay together);
    each labelled row is predicted by the fit on the other folds, each unlabelled row by the
    mean of the fold fits. So no rated reply is predicted by a model that saw its label.
    """
    X = np.column_stack([np.ones(len(y)), features])
    Xu = np.column_stack([np.ones(len(features_unlabeled)), features_unlabeled])
    unique = np.unique(groups)
    k = min(folds, len(unique))
    if k < 2:
        raise ValueError(f"cross-fitting needs at least 2 rated conversations, got {len(unique)}")
    fold_of = dict(zip(unique, np.random.default_rng(seed).permutation(len(unique)) % k, strict=True))
    fold = np.array([fold_of[g] for g in groups])
    pred = np.empty(len(y))
    pred_u = np.zeros(len(Xu))
    for j in range(k):
        beta = _ols_fit(X[fold != j], y[fold != j])
        pred[fold == j] = X[fold == j] @ beta
        pred_u += Xu @ beta / k
    return pred, pred_u


@dataclass(frozen=True)
class RaterCentring:
    """Each rating's rater offset, and the variance of the raters' mean leniency that stays in every mean."""

    offsets: np.ndarray
    rater_var: float  # method-of-moments estimate of the rater leniency variance
    shift_var: float  # rater_var * sum_r (share of the ratings by rater r)^2


def rater_offsets(rater: np.ndarray, reply: np.ndarray, rating: np.ndarray, sweeps: int = 200) -> RaterCentring:
    """Rater leniency: the rater terms of the least-squares fit of ``rating ~ reply + rater``
    (alternating means until they settle), centred to mean zero over the ratings, so which
    replies a rater happened to see does not count as leniency.

    Centring removes each rater's leniency relative to the others, not the mean leniency of the
    raters who took part: that shift is common to every mean (it cancels in differences) and is
    returned as ``shift_var`` = sigma_r^2 * sum_r w_r^2, with w_r the rater's share of the ratings
    and sigma_r^2 the variance of the offsets less their estimation noise
    (sigma_e^2 / (m_r (1 - 1/k)) for a rater with m_r ratings on replies with k raters).
    """
    _, r_idx = np.unique(rater, return_inverse=True)
    _, i_idx = np.unique(reply, return_inverse=True)
    r_n = np.bincount(r_idx)
    i_n = np.bincount(i_idx)
    offset = np.zeros(len(r_n))
    item = np.bincount(i_idx, rating) / i_n
    for _ in range(sweeps):
        item = np.bincount(i_idx, rating - offset[r_idx]) / i_n
        new = np.bincount(r_idx, rating - item[i_idx]) / r_n
        new -= np.average(new, weights=r_n)
        done = np.max(np.abs(new - offset)) < 1e-8
        offset = new
        if done:
            break
    resid = rating - item[i_idx] - offset[r_idx]
    df = len(rating) - len(i_n) - len(r_n) + 1
    k = float(np.mean(i_n[i_idx]))
    rater_var = 0.0
    if df > 0 and k > 1:
        noise = float(resid @ resid) / df / (r_n * (1 - 1 / k))
        rater_var = max(0.0, float(np.mean(offset ** 2 - noise)))
    share = r_n / r_n.sum()
    return RaterCentring(offsets=offset[r_idx], rater_var=rater_var, shift_var=rater_var * float(share @ share))


def rater_centred_means(df: pd.DataFrame, column: str, centre: bool) -> tuple[pd.DataFrame, float]:
    """One value per reply (conversation, system): the mean of its ratings in ``column``, after
    subtracting each rater's leniency (:func:`rater_offsets`) when ``centre``; and the variance
    the raters' mean leniency adds to every mean (0 without centring). Columns: conversation,
    system, y, ratings."""
    d = df.dropna(subset=["conversation", "system", column])[["rater", "conversation", "system", column]]
    value = d[column].astype(float)
    shift_var = 0.0
    if centre and len(d):
        reply = (d["conversation"].astype(str) + "\x1f" + d["system"].astype(str)).to_numpy()
        centring = rater_offsets(d["rater"].to_numpy(), reply, value.to_numpy())
        value = value - centring.offsets
        shift_var = centring.shift_var
    out = value.groupby([d["conversation"], d["system"]]).agg(["mean", "size"]).reset_index()
    return out.rename(columns={"mean": "y", "size": "ratings"}), shift_var
