"""System and condition comparisons: mixed models, paired nonparametric tests, and means.

For a factor (system or condition) the analysis reports
- an LMM with random intercepts for rater and item: the omnibus F test and every pairwise
  contrast with a Satterthwaite t interval (condition is adjusted for model when both vary);
- paired nonparametric tests on unit means (each rater's, or each conversation's, mean per
  level): Wilcoxon signed-rank per pair with the matched-pairs rank-biserial correlation, and
  Friedman across all levels for units that saw every level;
- optionally a proportional-odds model with rater- and item-clustered errors (``_ordinal``);
- per-scenario condition effects ("gains vary by scenario") from a condition x scenario LMM.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._effects import matched_rank_biserial, mean_ci
from tidekit.analysis._models import fit_mixed, pairwise_contrasts
from tidekit.analysis._results import GroupMean, TestResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["compare_factor", "condition_by_scenario", "factor_means"]

_CONDITION_ORDER = ("zero_shot", "fine_tuned", "reference")


def reference_level(df: pd.DataFrame, factor: str, config: AnalysisConfig) -> str:
    levels = sorted(df[factor].dropna().unique())
    if factor == "system" and config.reference_system in levels:
        return str(config.reference_system)
    if factor == "condition":
        for c in _CONDITION_ORDER:
            if c in levels:
                return c
    return str(levels[0])


def factor_means(df: pd.DataFrame, factor: str, config: AnalysisConfig, rating: str = "rating",
                 label: str | None = None) -> list[GroupMean]:
    """Mean of rater means per level of ``factor`` (each rater counts once per level)."""
    sub = df[["rater", factor, rating]].dropna()
    cell = sub.groupby(["rater", factor], observed=True)[rating].agg(["mean", "size"]).reset_index()
    out = []
    level = 1 - config.alpha
    for lv, g in cell.groupby(factor, observed=True):
        m, lo, hi = mean_ci(g["mean"].to_numpy(), level)
        flags = [f"only {len(g)} rater(s)"] if len(g) < config.min_cell_raters else []
        out.append(GroupMean(analysis=label or factor, group=str(lv), mean=m, ci_low=lo, ci_high=hi,
                             sd=float(g["mean"].std(ddof=1)) if len(g) > 1 else None, n=len(g),
                             n_ratings=int(g["size"].sum()), rating=rating, flags=flags))
    return out


def compare_factor(df: pd.DataFrame, factor: str, config: AnalysisConfig) -> tuple[list[TestResult], list[str]]:
    """All tests comparing the levels of ``factor``; returns (tests, skipped reasons)."""
    sub = df.dropna(subset=[factor])
    levels = sorted(sub[factor].unique())
    if len(levels) < 2:
        return [], [f"{factor} comparison skipped: one level only ({', '.join(map(str, levels)) or 'none'})"]
    tests: list[TestResult] = []
    ref = reference_level(sub, factor, config)
    factors = [factor]
    if factor == "condition" and "model" in sub and sub["model"].nunique() > 1:
        factors.append("model")
    mm = fit_mixed(sub, factors, reference={factor: ref}, max_dense_levels=config.max_dense_levels)
    n_r, n_i = int(sub["rater"].nunique()), int(sub["item"].nunique())
    common = {"analysis": factor, "level": "rating", "model": mm.formula, "n": len(sub), "n_ratings": len(sub),
              "n_raters": n_r, "n_items": n_i, "flags": list(mm.notes)}
    omni = mm.fit.f_test(mm.term_matrix(factor))
    tests.append(TestResult(family=f"{factor}/lmm-omnibus", test="LMM F test (Satterthwaite df)", term=factor,
                            statistic=omni["F"], statistic_name="F", df=omni["df1"], df2=omni["df2"],
                            p=omni["p"], **common))
    for b, a, L in pairwise_contrasts(mm, factor):
        r = mm.fit.t_test(L, 1 - config.alpha)
        tests.append(TestResult(
            family=f"{factor}/lmm-pairwise", test="LMM Wald t (Satterthwaite df)", term=f"{b} - {a}",
            estimate=r["estimate"], estimate_kind="difference in mean rating (scale points)",
            ci_low=r["ci_low"], ci_high=r["ci_high"], ci_level=1 - config.alpha, ci_method="t, Satterthwaite df",
            statistic=r["t"], statistic_name="t", df=r["df"], p=r["p"], **common))
    tests.extend(_paired_tests(sub, factor, levels, config))
    if config.ordinal == "clustered":
        from tidekit.analysis._ordinal import ordinal_comparison

        tests.extend(ordinal_comparison(sub, factor, ref, config))
    return tests, []


def _paired_tests(df: pd.DataFrame, factor: str, levels: list[str], config: AnalysisConfig) -> list[TestResult]:
    unit = "rater" if config.pair_by == "rater" else "conversation"
    if unit not in df:
        return []
    wide = df.groupby([unit, factor], observed=True)["rating"].mean().unstack(factor)
    counts = df.groupby([unit, factor], observed=True)["rating"].size().unstack(factor)
    tests = []
    level = 1 - config.alpha
    for a, b in combinations(levels, 2):
        both = wide[[a, b]].dropna()
        if len(both) < 2:
            continue
        d = (both[b] - both[a]).to_numpy()
        if np.all(d == 0):
            continue
        w = stats.wilcoxon(both[b], both[a], zero_method="wilcox")
        m, lo, hi = mean_ci(d, level)
        flags = [f"only {len(both)} {unit}s rated both"] if len(both) < config.min_cell_raters else []
        tests.append(TestResult(
            family=f"{factor}/wilcoxon", analysis=factor, test=f"Wilcoxon signed-rank, paired by {unit}",
            term=f"{b} - {a}", level=unit, estimate=m,
            estimate_kind=f"mean paired difference of {unit} means (scale points)", ci_low=lo, ci_high=hi,
            ci_level=level, ci_method="paired t", statistic=float(w.statistic), statistic_name="W",
            p=float(w.pvalue), effect_size=matched_rank_biserial(d), effect_size_name="matched_rank_biserial",
            n=len(both), n_ratings=int(counts.loc[both.index, [a, b]].sum().sum()),
            n_raters=int(df[df[unit].isin(both.index)]["rater"].nunique()), flags=flags))
    if len(levels) > 2:
        complete = wide[levels].dropna()
        if len(complete) >= 2:
            fr = stats.friedmanchisquare(*[complete[lv] for lv in levels])
            k = len(levels)
            tests.append(TestResult(
                family=f"{factor}/friedman", analysis=factor, test=f"Friedman, blocked by {unit}", term=factor,
                level=unit, statistic=float(fr.statistic), statistic_name="chi2", df=k - 1,
                p=float(fr.pvalue), effect_size=float(fr.statistic / (len(complete) * (k - 1))),
                effect_size_name="kendalls_w", n=len(complete),
                flags=[f"{len(wide) - len(complete)} {unit}(s) without every level left out"]
                if len(complete) < len(wide) else []))
    return tests


def condition_by_scenario(df: pd.DataFrame, config: AnalysisConfig) -> tuple[list[TestResult], list[str]]:
    """Per-scenario condition effects (each non-baseline condition vs the baseline) and the interaction."""
    if not {"condition", "scenario"} <= set(df.columns):
        return [], ["condition-by-scenario skipped: no condition or scenario column"]
    sub = df.dropna(subset=["condition", "scenario"])
    if sub["condition"].nunique() < 2 or sub["scenario"].nunique() < 2:
        return [], ["condition-by-scenario skipped: condition or scenario has one level"]
    ref_c = reference_level(sub, "condition", config)
    factors = ["condition", "scenario"]
    if "model" in sub and sub["model"].nunique() > 1:
        factors.append("model")
    mm = fit_mixed(sub, factors, [("condition", "scenario")], reference={"condition": ref_c},
                   max_dense_levels=config.max_dense_levels)
    common = {"analysis": "condition_by_scenario", "level": "rating", "model": mm.formula, "n": len(sub),
              "n_ratings": len(sub), "n_raters": int(sub["rater"].nunique()),
              "n_items": int(sub["item"].nunique()), "flags": list(mm.notes)}
    tests = []
    inter = mm.fit.f_test(mm.term_matrix("condition:scenario"))
    tests.append(TestResult(family="condition_by_scenario/interaction", test="LMM F test (Satterthwaite df)",
                            term="condition x scenario", statistic=inter["F"], statistic_name="F",
                            df=inter["df1"], df2=inter["df2"], p=inter["p"], **common))
    scen_levels = mm.design.levels["scenario"]
    for cond in mm.design.levels["condition"][1:]:
        for s in scen_levels:
            coefs = {f"condition[{cond}]": 1.0}
            if s != scen_levels[0]:
                coefs[f"condition[{cond}]:scenario[{s}]"] = 1.0
            L = mm.vector(coefs)
            if L is None:
                continue
            r = mm.fit.t_test(L, 1 - config.alpha)
            n_s = int((sub["scenario"] == s).sum())
            tests.append(TestResult(
                family=f"condition_by_scenario/{cond}", test="LMM Wald t (Satterthwaite df)",
                term=f"{cond} - {ref_c} | {s}", estimate=r["estimate"],
                estimate_kind="difference in mean rating (scale points)", ci_low=r["ci_low"],
                ci_high=r["ci_high"], ci_level=1 - config.alpha, ci_method="t, Satterthwaite df",
                statistic=r["t"], statistic_name="t", df=r["df"], p=r["p"],
                extra={"scenario": s, "condition": cond, "baseline": ref_c, "ratings_in_scenario": n_s},
                **common))
    return tests, []
