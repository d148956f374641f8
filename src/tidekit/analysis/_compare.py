"""System and condition comparisons: mixed models, paired nonparametric tests, and means.

For a factor (system or condition) the analysis reports
- the primary test by default: an LMM with crossed random intercepts for rater, conversation
  and item (reply), plus rater-by-factor where the design identifies it; the omnibus F test and
  every pairwise contrast with a Satterthwaite t interval, Holm within the pairwise family and
  gated by the omnibus F (closed testing); condition is adjusted for model when both vary;
- a robustness check paired by conversation (the unit every system answered): Wilcoxon
  signed-rank per pair on conversation means with the matched-pairs rank-biserial correlation,
  and Friedman across all levels;
- optionally a proportional-odds model with rater- and item-clustered errors (``_ordinal``);
- per-scenario condition effects ("gains vary by scenario") from a condition x scenario LMM.
Which of these is primary is ``config.primary``; the others never add findings. A rater-paired
Wilcoxon is available only as a labelled descriptive test (``rater_paired_descriptive``).
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._effects import matched_rank_biserial, mean_ci
from tidekit.analysis._models import fit_mixed, pairwise_contrasts
from tidekit.analysis._results import GroupMean, TestResult, largest_contrast
from tidekit.data import CONDITIONS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["compare_factor", "condition_by_scenario", "factor_means"]

_CONDITION_ORDER = CONDITIONS


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
    """All tests comparing the levels of ``factor``; returns (tests, skipped reasons).

    The primary test (``config.primary.<factor>``) gives the findings; the others are shown
    beside it as sensitivity analyses. Tests the design cannot support are skipped with the
    reason, and the rest still run.
    """
    sub = df.dropna(subset=[factor])
    levels = sorted(sub[factor].unique())
    if len(levels) < 2:
        return [], [f"{factor} comparison skipped: one level only ({', '.join(map(str, levels)) or 'none'})"]
    primary = getattr(config.primary, factor)
    tests: list[TestResult] = []
    skipped: list[str] = []
    ref = reference_level(sub, factor, config)
    n_r = int(sub["rater"].nunique())
    if n_r < 2:
        skipped.append(f"{factor} LMM skipped: {n_r} rater (random rater intercepts need at least 2)")
    else:
        tests.extend(_lmm_tests(sub, factor, ref, config, role="primary" if primary == "lmm" else "sensitivity"))
    paired, why = _paired_tests(sub, factor, levels, config, "conversation",
                                role="primary" if primary == "conversation-wilcoxon" else "sensitivity")
    tests.extend(paired)
    skipped.extend(why)
    if config.rater_paired_descriptive:
        tests.extend(_paired_tests(sub, factor, levels, config, "rater", role="descriptive")[0])
    if config.ordinal == "clustered":
        from tidekit.analysis._ordinal import ordinal_comparison

        ordinal = ordinal_comparison(sub, factor, ref, config,
                                     role="primary" if primary == "ordinal" else "sensitivity")
        if not ordinal:
            skipped.append(f"{factor} ordinal model skipped: fewer than 3 distinct ratings or aliased levels")
        tests.extend(ordinal)
    return tests, skipped


def _lmm_tests(sub: pd.DataFrame, factor: str, ref: str, config: AnalysisConfig, role: str) -> list[TestResult]:
    """The LMM ``rating ~ factor [+ model] + (1|rater) + (1|conversation) + (1|item) [+ (1|rater:factor)]``:
    omnibus F and every pairwise contrast, gated by the omnibus (closed testing)."""
    factors = [factor]
    if factor == "condition" and "model" in sub and sub["model"].nunique() > 1:
        factors.append("model")
    mm = fit_mixed(sub, factors, reference={factor: ref}, max_dense_levels=config.max_dense_levels,
                   rater_by=factor if config.rater_by_factor_effect else None, conversation=True)
    n_r, n_i = int(sub["rater"].nunique()), int(sub["item"].nunique())
    common = {"analysis": factor, "level": "rating", "model": mm.formula, "n": len(sub), "n_ratings": len(sub),
              "n_raters": n_r, "n_items": n_i, "flags": list(mm.notes), "role": role}
    pairs = []
    omni = mm.fit.f_test(mm.term_matrix(factor))
    for b, a, L in pairwise_contrasts(mm, factor):
        pairs.append(TestResult(family=f"{factor}/lmm-pairwise", term=f"{b} - {a}", **mm.wald_t(L, 1 - config.alpha),
                                **{**common, "extra": {"gate": f"{factor}/lmm-omnibus"}}))
    omnibus = TestResult(family=f"{factor}/lmm-omnibus", test="LMM F test (Satterthwaite df)", term=factor,
                         statistic=omni["F"], statistic_name="F", df=omni["df1"], df2=omni["df2"], p=omni["p"],
                         **largest_contrast(pairs, len(pairs) == 1), **common)
    return [omnibus, *pairs]


def _paired_tests(df: pd.DataFrame, factor: str, levels: list[str], config: AnalysisConfig, unit: str,
                  role: str) -> tuple[list[TestResult], list[str]]:
    """Wilcoxon signed-rank per pair of levels (and Friedman over all) on ``unit`` means.

    Paired by conversation, the unit every system answered, this is a valid robustness check of
    the LMM. Paired by rater it is descriptive only: a rater's mean per system depends on the
    particular replies the rater saw, so the test treats replies as fixed and over-rejects.
    """
    if unit not in df or df[unit].isna().all():
        return [], [f"{factor} Wilcoxon paired by {unit} skipped: no {unit} column"]
    wide = df.groupby([unit, factor], observed=True)["rating"].mean().unstack(factor)
    counts = df.groupby([unit, factor], observed=True)["rating"].size().unstack(factor)
    tests: list[TestResult] = []
    skipped: list[str] = []
    level = 1 - config.alpha
    label = (None if role != "descriptive" else
             "paired by rater: treats the particular replies as fixed (over-rejects when replies vary); "
             "descriptive only, never a finding")
    for a, b in combinations(levels, 2):
        both = wide[[a, b]].dropna()
        d = (both[b] - both[a]).to_numpy()
        if len(both) < 2 or np.all(d == 0):
            skipped.append(f"{factor} Wilcoxon {b} - {a} paired by {unit} skipped: "
                           + (f"{len(both)} {unit}(s) rated under both" if len(both) < 2 else "no differences"))
            continue
        w = stats.wilcoxon(both[b], both[a], zero_method="wilcox")
        m, lo, hi = mean_ci(d, level)
        flags = [f"only {len(both)} {unit}s rated both"] if len(both) < config.min_cell_raters else []
        tests.append(TestResult(
            family=f"{factor}/wilcoxon-{unit}", analysis=factor, test=f"Wilcoxon signed-rank, paired by {unit}",
            term=f"{b} - {a}", level=unit, estimate=m, role=role, label=label,
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
                family=f"{factor}/friedman-{unit}", analysis=factor, test=f"Friedman, blocked by {unit}", term=factor,
                level=unit, statistic=float(fr.statistic), statistic_name="chi2", df=k - 1, role=role, label=label,
                p=float(fr.pvalue), effect_size=float(fr.statistic / (len(complete) * (k - 1))),
                effect_size_name="kendalls_w", n=len(complete),
                flags=[f"{len(wide) - len(complete)} {unit}(s) without every level left out"]
                if len(complete) < len(wide) else []))
    return tests, skipped


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
                   max_dense_levels=config.max_dense_levels, conversation=True,
                   rater_by="condition" if config.rater_by_factor_effect else None)
    common = {"analysis": "condition_by_scenario", "level": "rating", "model": mm.formula, "n": len(sub),
              "n_ratings": len(sub), "n_raters": int(sub["rater"].nunique()),
              "n_items": int(sub["item"].nunique()), "flags": list(mm.notes)}
    tests = []
    inter = mm.fit.f_test(mm.term_matrix("condition:scenario"))
    scen_levels = mm.design.levels["scenario"]
    gains: list[tuple[str, str, np.ndarray, float]] = []  # (condition, scenario, L, estimate)
    for cond in mm.design.levels["condition"][1:]:
        for s in scen_levels:
            coefs = {f"condition[{cond}]": 1.0}
            if s != scen_levels[0]:
                coefs[f"condition[{cond}]:scenario[{s}]"] = 1.0
            L = mm.vector(coefs)
            if L is None:
                continue
            fields = mm.wald_t(L, 1 - config.alpha)
            gains.append((cond, s, L, float(fields["estimate"])))  # type: ignore[arg-type]
            n_s = int((sub["scenario"] == s).sum())
            tests.append(TestResult(
                family=f"condition_by_scenario/{cond}", term=f"{cond} - {ref_c} | {s}", **fields,
                extra={"scenario": s, "condition": cond, "baseline": ref_c, "ratings_in_scenario": n_s},
                **common))
    est: dict = {}
    spread = [(max(g, key=lambda x: x[3]), min(g, key=lambda x: x[3]))
              for c in {g[0] for g in gains} if len(g := [x for x in gains if x[0] == c]) > 1]
    if spread:  # the interaction's size: the largest difference between two scenarios' gains
        hi, lo = max(spread, key=lambda p: p[0][3] - p[1][3])
        r = mm.fit.t_test(hi[2] - lo[2], 1 - config.alpha)
        est = {"estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
               "ci_level": 1 - config.alpha,
               "ci_method": "t, Satterthwaite df, for that pair (not adjusted for choosing it)",
               "estimate_kind": f"largest difference between scenarios in the {hi[0]} - {ref_c} gain: "
                                f"{hi[1]} minus {lo[1]} (points)"}
    tests.insert(0, TestResult(family="condition_by_scenario/interaction", test="LMM F test (Satterthwaite df)",
                               term="condition x scenario", statistic=inter["F"], statistic_name="F",
                               df=inter["df1"], df2=inter["df2"], p=inter["p"], **est, **common))
    return tests, []
