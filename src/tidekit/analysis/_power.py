"""Power by simulation for a rater-level demographic test, and its false-positive rate; and the
rated conversations a prediction-powered estimate needs for a target interval width.

A planned study (raters, items, ratings per rater, attribute groups, effect, variance
components) is simulated many times; each simulated study is analysed with the rater-level
test tidekit reports as the finding (Mann-Whitney or Kruskal-Wallis on rater means for a main
effect, or on each rater's style contrast for an interaction). Power is the share of studies
with p < alpha, with a Wilson interval. With ``effect=0`` the same function measures the
false-positive rate, and ``rating_level=True`` runs the naive test over all ratings instead,
to show how far it strays from alpha.

Ratings are drawn from tidekit's one rater model (:mod:`tidekit.rating._rater_model`): rater
leniency, item quality, each rater's own taste for validate-first replies (half the items),
noise, and the planted group effect, either on every item (``kind="main"``) or on
validate-first items only (``kind="interaction"``), rounded to the 1-7 scale.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy import stats

from tidekit.analysis._config import PowerConfig
from tidekit.analysis._effects import wilson
from tidekit.analysis._results import PowerResult
from tidekit.rating import Planted, RaterBehaviour

__all__ = ["power_by_simulation", "rated_for_width", "simulate_study_p"]


def _group_p(values: np.ndarray, groups: np.ndarray, n_groups: int) -> float:
    parts = [values[groups == g] for g in range(n_groups)]
    if n_groups == 2:
        return float(stats.mannwhitneyu(parts[1], parts[0], alternative="two-sided").pvalue)
    return float(stats.kruskal(*parts).pvalue)


def simulate_study_p(cfg: PowerConfig, rng: np.random.Generator, rating_level: bool = False) -> float:
    """Simulate one study and return the p-value of the rater-level (or rating-level) test."""
    R, k, G = cfg.raters, cfg.ratings_per_rater, cfg.groups
    group = np.arange(R) % G
    items = (rng.integers(0, cfg.items, size=(R, k)) if k > cfg.items  # each rater: k distinct items
             else np.argsort(rng.random((R, cfg.items)), axis=1)[:, :k])
    style = (items % 2).astype(float)  # half the items validate first
    behaviour = RaterBehaviour(rater_sd=cfg.rater_sd, item_sd=cfg.item_sd, noise_sd=cfg.residual_sd,
                               slope_sd=cfg.slope_sd, points=7)
    u_r = behaviour.leniency(rng, R)
    u_i = behaviour.item_effects(rng, cfg.items)
    slope = behaviour.slopes(rng, R)  # drawn in both kinds (used by "interaction"), so seeds repeat
    group_effect = Planted(cfg.effect, (group / (G - 1))[:, None], 1.0 if cfg.kind == "main" else style)
    latent = behaviour.latent(rng, 4.0, rater=u_r[:, None], item=u_i[items], style=style,
                              slope=slope[:, None] if cfg.kind == "interaction" else 0.0,
                              planted=[group_effect], size=(R, k))
    y = behaviour.to_scale(latent)
    if cfg.kind == "main":
        if rating_level:
            return _group_p(y.ravel(), np.repeat(group, k), G)
        return _group_p(y.mean(1), group, G)
    s1, s0 = style.sum(1), (1 - style).sum(1)
    ok = (s1 > 0) & (s0 > 0)
    contrast = (y * style).sum(1) / np.maximum(s1, 1) - (y * (1 - style)).sum(1) / np.maximum(s0, 1)
    if rating_level:  # pooled test of the style difference between groups, one row per rating
        centred = y - np.where(style == 1, y[style == 1].mean(), y[style == 0].mean())
        sign = np.where(style == 1, 1.0, -1.0)
        return _group_p((centred * sign).ravel(), np.repeat(group, k), G)
    return _group_p(contrast[ok], group[ok], G)


def power_by_simulation(cfg: PowerConfig, alpha: float = 0.05, seed: int = 0,
                        rating_level: bool = False) -> PowerResult:
    """Share of simulated studies whose test has p < alpha (power, or false-positive rate at effect 0)."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    hits = sum(simulate_study_p(cfg, rng, rating_level) < alpha for _ in range(cfg.simulations))
    lo, hi = wilson(hits, cfg.simulations)
    what = "rater means" if cfg.kind == "main" else "each rater's style contrast"
    test = ("Mann-Whitney U" if cfg.groups == 2 else "Kruskal-Wallis") + (
        f" on {what} (rater level)" if not rating_level else " over all ratings (rating level, naive)")
    return PowerResult(config=cfg.model_dump(), test=test, alpha=alpha, power=hits / cfg.simulations,
                       ci_low=lo, ci_high=hi, simulations=cfg.simulations,
                       wall_s=round(time.perf_counter() - t0, 3))


def rated_for_width(width: float, sd: float, correlation: float, conversations: int,
                    alpha: float = 0.05) -> tuple[int | None, int | None]:
    """Rated conversations for a full CI width ``width``: (human-only, prediction-powered).

    Of ``conversations`` scored ones, ``n`` are rated at random. Human-only, the half width is
    ``z sd / sqrt(n)``. PPI++ with its optimal lambda has variance
    ``sd^2 / n * (1 - rho^2 (N - n) / N)`` (lambda* = cov / ((1 + n/(N - n)) var f), put into
    the variance ``lambda^2 var f / (N - n) + var(Y - lambda f) / n``), so with
    ``A = (2 z sd / width)^2`` the smallest n is ``A (1 - rho^2) / (1 - A rho^2 / N)``. None: not
    reachable with ``conversations`` (the interval of rating all of them is still wider).
    """
    z = float(stats.norm.ppf(1 - alpha / 2))
    a = (2 * z * sd / width) ** 2
    rho2 = correlation ** 2
    human = math.ceil(a - 1e-9)
    denom = 1 - a * rho2 / conversations
    ppi = math.ceil(a * (1 - rho2) / denom - 1e-9) if denom > 0 else None
    ppi = max(ppi, 2) if ppi is not None else None
    return (max(human, 2) if human <= conversations else None,
            ppi if ppi is not None and ppi <= conversations else None)
