"""Demographic effects: does a rater attribute (age, education, gender...) change ratings?

The statistical trap: ratings by one rater are correlated, so a test over all ratings treats
thousands of correlated rows as independent and makes null attribute effects look
significant. Here every finding is rater-aware:

- main effect, rater level: each rater's mean rating is one observation; Mann-Whitney (two
  levels; rank-biserial = Cliff's delta, Welch CI of the mean difference) or Kruskal-Wallis
  (epsilon squared) with Dunn post-hoc tests (Cliff's delta per pair);
- main effect, mixed model: ``rating ~ attribute + (1|rater) + (1|item)``, F and contrasts
  with Satterthwaite df;
- interaction with a within-rater factor (system, condition, scenario), rater level: a mixed
  (split-plot) ANOVA on rater-by-level means, whose error term is the rater-by-level
  variation within attribute groups; nonparametric tests on each rater's contrast between two
  levels; and a chi-square test of which level each rater preferred (one row per rater);
- interaction, mixed model: ``rating ~ attribute * factor + (1|rater) + (1|item) +
  (1|rater:factor)``.

A rating-level test is added beside them when ``rating_level_tests`` is on, marked
``finding=False`` and labelled: it shows how much pooling overstates the evidence.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._design import build_design
from tidekit.analysis._effects import (
    cliffs_delta,
    cramers_v,
    epsilon_squared,
    mean_ci,
    rank_biserial,
    welch_diff_ci,
)
from tidekit.analysis._models import fit_mixed
from tidekit.analysis._results import GroupMean, TestResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NAIVE_LABEL", "attribute_effects"]

NAIVE_LABEL = ("rating-level test: treats every rating as independent although ratings by one rater are "
               "correlated; shown only for comparison, not a finding")
MAX_PAIRWISE_LEVELS = 4  # nonparametric interaction contrasts for factors with at most this many levels


def _group_tests(values: dict[str, np.ndarray], level: str) -> tuple[dict, list[tuple[str, str, float]]]:
    """Mann-Whitney (2 groups) or Kruskal-Wallis (3+): test fields and Cliff's delta per pair."""
    names = list(values)
    pairs = [(b, a, cliffs_delta(values[b], values[a])) for a, b in combinations(names, 2)]
    n = sum(len(v) for v in values.values())
    if len(names) == 2:
        a, b = names
        mw = stats.mannwhitneyu(values[b], values[a], alternative="two-sided")
        rb = rank_biserial(float(mw.statistic), len(values[b]), len(values[a]))
        return ({"test": "Mann-Whitney U (two-sided)" + ("" if level == "rater" else ", all ratings"),
                 "statistic": float(mw.statistic), "statistic_name": "U", "p": float(mw.pvalue),
                 "effect_size": rb, "effect_size_name": "rank_biserial",
                 "effect_sizes": {"cliffs_delta": pairs[0][2]}, "n": n}, pairs)
    kw = stats.kruskal(*values.values())
    return ({"test": "Kruskal-Wallis" + ("" if level == "rater" else ", all ratings"),
             "statistic": float(kw.statistic), "statistic_name": "H", "df": len(names) - 1, "p": float(kw.pvalue),
             "effect_size": epsilon_squared(float(kw.statistic), n), "effect_size_name": "epsilon_squared",
             "n": n}, pairs)


def _small(counts: dict[str, int], minimum: int, what: str = "raters") -> list[str]:
    return [f"small cell: {k} has {v} {what} (< {minimum})" for k, v in counts.items() if v < minimum]


def attribute_effects(df: pd.DataFrame, raters: pd.DataFrame, attr: str, factors: list[str],
                      config: AnalysisConfig) -> tuple[list[TestResult], list[GroupMean], list[str]]:
    """Main effect of ``attr`` and its interactions with ``factors``."""
    known = raters[attr].dropna()
    sub = df[df["rater"].isin(known.index)].copy()
    sub["attr"] = sub["rater"].map(known)
    levels = sorted(known.unique())
    if len(levels) < 2:
        return [], [], [f"{attr}: skipped, one level only ({', '.join(levels) or 'no rater gave it'})"]
    tests: list[TestResult] = []
    means: list[GroupMean] = []
    level_ci = 1 - config.alpha
    rmeans = sub.groupby("rater")["rating"].agg(["mean", "size"])
    rmeans["attr"] = known.reindex(rmeans.index)
    groups = {lv: rmeans.loc[rmeans["attr"] == lv, "mean"].to_numpy() for lv in levels}
    counts = {lv: len(v) for lv, v in groups.items()}
    flags = _small(counts, config.min_cell_raters)
    for lv in levels:
        m, lo, hi = mean_ci(groups[lv], level_ci)
        means.append(GroupMean(analysis=attr, group=lv, mean=m, ci_low=lo, ci_high=hi,
                               sd=float(np.std(groups[lv], ddof=1)) if counts[lv] > 1 else None, n=counts[lv],
                               n_ratings=int(rmeans.loc[rmeans["attr"] == lv, "size"].sum()),
                               flags=_small({lv: counts[lv]}, config.min_cell_raters)))
    base = {"analysis": "demographic", "n_ratings": len(sub), "n_raters": len(rmeans),
            "n_items": int(sub["item"].nunique())}
    fields, pairs = _group_tests(groups, "rater")
    if len(levels) == 2:
        d, lo, hi = welch_diff_ci(groups[levels[1]], groups[levels[0]], level_ci)
        fields.update(estimate=d, ci_low=lo, ci_high=hi, ci_level=level_ci, ci_method="Welch t",
                      estimate_kind=f"difference in mean of rater means, {levels[1]} - {levels[0]}")
    tests.append(TestResult(family="demographic-main/rater-level", term=attr, level="rater",
                            flags=list(flags), extra={"group_means": {k: float(np.mean(v)) for k, v in groups.items()}},
                            **{**base, **fields}))
    if len(levels) > 2:
        import pandas as pd
        import scikit_posthocs as sp

        long = pd.DataFrame({"v": np.concatenate(list(groups.values())),
                             "g": np.repeat(levels, [counts[lv] for lv in levels])})
        dunn = sp.posthoc_dunn(long, val_col="v", group_col="g", p_adjust=None)
        for b, a, delta in pairs:
            tests.append(TestResult(
                family=f"demographic-main/dunn:{attr}", test="Dunn post-hoc (rank z)", term=f"{attr}: {b} vs {a}",
                level="rater", p=float(dunn.loc[b, a]), effect_size=delta, effect_size_name="cliffs_delta",
                n=counts[a] + counts[b], flags=_small({a: counts[a], b: counts[b]}, config.min_cell_raters),
                **{k: v for k, v in base.items() if k != "n_raters"}, n_raters=counts[a] + counts[b]))
    mm = fit_mixed(sub.assign(**{attr: sub["attr"]}), [attr], max_dense_levels=config.max_dense_levels)
    omni = mm.fit.f_test(mm.term_matrix(attr))
    lmm_base = {**base, "level": "rating", "model": mm.formula, "n": len(sub), "flags": [*flags, *mm.notes]}
    tests.append(TestResult(family="demographic-main/lmm", test="LMM F test (Satterthwaite df)", term=attr,
                            statistic=omni["F"], statistic_name="F", df=omni["df1"], df2=omni["df2"], p=omni["p"],
                            **lmm_base))
    for lv in mm.design.levels[attr][1:]:
        L = mm.vector({f"{attr}[{lv}]": 1.0})
        if L is None:
            continue
        r = mm.fit.t_test(L, level_ci)
        tests.append(TestResult(
            family=f"demographic-main/lmm-contrast:{attr}", test="LMM Wald t (Satterthwaite df)",
            term=f"{attr}: {lv} - {mm.design.levels[attr][0]}", estimate=r["estimate"],
            estimate_kind="difference in mean rating (scale points)", ci_low=r["ci_low"], ci_high=r["ci_high"],
            ci_level=level_ci, ci_method="t, Satterthwaite df", statistic=r["t"], statistic_name="t", df=r["df"],
            p=r["p"], **lmm_base))
    if config.rating_level_tests:
        raw = {lv: sub.loc[sub["attr"] == lv, "rating"].to_numpy() for lv in levels}
        f2, _ = _group_tests(raw, "rating")
        f2["n"] = len(sub)
        tests.append(TestResult(family="demographic-main/rating-level (not a finding)", term=attr, level="rating",
                                finding=False, label=NAIVE_LABEL, **{**base, **f2}))
    skipped: list[str] = []
    for factor in factors:
        t, why = _interaction(sub, attr, factor, config)
        tests.extend(t)
        skipped.extend(why)
    return tests, means, skipped


def _split_plot(cell: pd.DataFrame, attr_of: pd.Series) -> dict[str, float] | None:
    """Mixed ANOVA (between: attribute; within: factor) on complete rater-by-level means."""
    Y = cell.to_numpy(float)
    g = attr_of.reindex(cell.index).to_numpy()
    groups = np.unique(g)
    N, b = Y.shape
    a = len(groups)
    if a < 2 or b < 2 or N - a < 1:
        return None
    grand = Y.mean()
    lvl = Y.mean(0)
    ss_ab = 0.0
    ss_err = 0.0
    for gr in groups:
        Yg = Y[g == gr]
        gm, glv = Yg.mean(), Yg.mean(0)
        ss_ab += len(Yg) * float(((glv - gm - lvl + grand) ** 2).sum())
        ss_err += float(((Yg - Yg.mean(1, keepdims=True) - glv + gm) ** 2).sum())
    df1, df2 = (a - 1) * (b - 1), (N - a) * (b - 1)
    if ss_err <= 0:
        return None
    F = (ss_ab / df1) / (ss_err / df2)
    return {"F": F, "df1": df1, "df2": df2, "p": float(stats.f.sf(F, df1, df2)),
            "partial_eta_squared": ss_ab / (ss_ab + ss_err)}


def _interaction(sub: pd.DataFrame, attr: str, factor: str, config: AnalysisConfig) -> tuple[list[TestResult], list[str]]:
    data = sub.dropna(subset=[factor])
    from tidekit.analysis._compare import reference_level

    flevels = sorted(data[factor].unique())
    if len(flevels) >= 2:  # the baseline first, so contrasts read 'other - baseline'
        ref = reference_level(data, factor, config)
        flevels = [ref] + [x for x in flevels if x != ref]
    if len(flevels) < 2:
        return [], [f"{attr} x {factor}: skipped, {factor} has one level"]
    level_ci = 1 - config.alpha
    tests: list[TestResult] = []
    term = f"{attr} x {factor}"
    attr_of = data.groupby("rater")["attr"].first()
    cell = data.groupby(["rater", factor])["rating"].mean().unstack(factor)
    complete = cell[flevels].dropna()
    base = {"analysis": "demographic", "term": term, "n_items": int(data["item"].nunique())}
    sp = _split_plot(complete, attr_of) if len(complete) >= 3 else None
    if sp is not None:
        counts = attr_of.reindex(complete.index).value_counts().to_dict()
        tests.append(TestResult(
            family="demographic-interaction/rater-anova", level="rater",
            test=f"mixed ANOVA on rater-by-{factor} means (between: {attr}; within: {factor})",
            statistic=sp["F"], statistic_name="F", df=sp["df1"], df2=sp["df2"], p=sp["p"],
            effect_size=sp["partial_eta_squared"], effect_size_name="partial_eta_squared", n=len(complete),
            n_raters=len(complete), n_ratings=int(data["rater"].isin(complete.index).sum()),
            flags=_small(counts, config.min_cell_raters)
            + ([f"{len(cell) - len(complete)} rater(s) without every {factor} level left out"]
               if len(complete) < len(cell) else []), **base))
    if len(flevels) <= MAX_PAIRWISE_LEVELS:
        for a, b in combinations(flevels, 2):
            both = cell[[a, b]].dropna()
            contrast = (both[b] - both[a])
            grp = attr_of.reindex(both.index)
            alevels = sorted(grp.unique())
            if len(alevels) < 2:
                continue
            values = {lv: contrast[grp == lv].to_numpy() for lv in alevels}
            fields, _ = _group_tests(values, "rater")
            extra = {"group_contrasts": {lv: float(np.mean(v)) for lv, v in values.items()},
                     "contrast": f"{b} - {a} (each rater's mean difference)"}
            if len(alevels) == 2:
                d, lo, hi = welch_diff_ci(values[alevels[1]], values[alevels[0]], level_ci)
                fields.update(estimate=d, ci_low=lo, ci_high=hi, ci_level=level_ci, ci_method="Welch t",
                              estimate_kind=f"({b} - {a}) for {alevels[1]} minus ({b} - {a}) for {alevels[0]}")
            tests.append(TestResult(
                family="demographic-interaction/rater-contrast", level="rater", extra=extra,
                n_raters=len(both), n_ratings=int(data[data[factor].isin([a, b])]["rater"].isin(both.index).sum()),
                flags=_small({k: len(v) for k, v in values.items()}, config.min_cell_raters),
                **{**base, "term": f"{attr} x {factor} ({b} - {a})"}, **fields))
        if factor in ("system", "condition") and len(complete) >= 2:
            tests.extend(_preference(complete, attr_of, attr, factor, config, base))
    mm = fit_mixed(data.assign(**{attr: data["attr"]}), [attr, factor], [(attr, factor)],
                   reference={factor: flevels[0]}, rater_by=factor if config.rater_by_factor_effect else None,
                   max_dense_levels=config.max_dense_levels)
    it = mm.fit.f_test(mm.term_matrix(f"{attr}:{factor}"))
    lmm_base = {**base, "level": "rating", "model": mm.formula, "n": len(data), "n_ratings": len(data),
                "n_raters": int(data["rater"].nunique()), "flags": list(mm.notes)}
    tests.append(TestResult(family="demographic-interaction/lmm", test="LMM F test (Satterthwaite df)",
                            statistic=it["F"], statistic_name="F", df=it["df1"], df2=it["df2"], p=it["p"],
                            **lmm_base))
    alv, flv = mm.design.levels[attr], mm.design.levels[factor]
    if len(flv) <= MAX_PAIRWISE_LEVELS:
        for x in alv[1:]:
            for f in flv[1:]:
                L = mm.vector({f"{attr}[{x}]:{factor}[{f}]": 1.0})
                if L is None:
                    continue
                r = mm.fit.t_test(L, level_ci)
                tests.append(TestResult(
                    family=f"demographic-interaction/lmm-coef:{attr}x{factor}", test="LMM Wald t (Satterthwaite df)",
                    estimate=r["estimate"], ci_low=r["ci_low"], ci_high=r["ci_high"], ci_level=level_ci,
                    estimate_kind=f"({f} - {flv[0]}) for {x} minus ({f} - {flv[0]}) for {alv[0]} (points)",
                    ci_method="t, Satterthwaite df", statistic=r["t"], statistic_name="t", df=r["df"], p=r["p"],
                    **{**lmm_base, "term": f"{attr}[{x}] x {factor}[{f}]"}))
    if config.rating_level_tests:
        tests.append(_naive_interaction(data, attr, factor, base))
    return tests, []


def _preference(complete: pd.DataFrame, attr_of: pd.Series, attr: str, factor: str, config: AnalysisConfig,
                base: dict) -> list[TestResult]:
    import pandas as pd

    Y = complete.to_numpy(float)
    top = Y.max(1, keepdims=True)
    winners = top == Y
    pref = np.where(winners.sum(1) > 1, "tie", np.asarray(complete.columns, dtype=object)[Y.argmax(1)])
    table = pd.crosstab(attr_of.reindex(complete.index).to_numpy(), pref)
    if table.shape[0] < 2 or table.shape[1] < 2:
        return []
    chi2, p, dof, expected = stats.chi2_contingency(table.to_numpy())
    small = int((expected < 5).sum())
    flags = ([f"small expected counts: {small} of {expected.size} cells below 5 (chi-square approximate)"]
             if small else [])
    return [TestResult(
        family="demographic-interaction/preference-chi2", level="rater",
        test=f"chi-square of {attr} x preferred {factor} (one row per rater)", statistic=float(chi2),
        statistic_name="chi2", df=float(dof), p=float(p), effect_size=cramers_v(chi2, int(table.to_numpy().sum()),
                                                                              table.shape),
        effect_size_name="cramers_v", n=int(table.to_numpy().sum()), n_raters=int(table.to_numpy().sum()),
        flags=flags, extra={"table": {str(r): {str(c): int(v) for c, v in row.items()}
                                      for r, row in table.iterrows()}},
        **{**base, "term": f"{attr} x preferred {factor}"})]


def _naive_interaction(data: pd.DataFrame, attr: str, factor: str, base: dict) -> TestResult:
    """OLS two-way ANOVA interaction F over all ratings (ignores raters): the trap, labelled."""
    full = build_design(data.assign(**{attr: data["attr"]}), [attr, factor], [(attr, factor)])
    red = build_design(data.assign(**{attr: data["attr"]}), [attr, factor])
    y = data["rating"].to_numpy(float)

    def rss(X: np.ndarray) -> tuple[float, int]:
        xtx, xty = X.T @ X, X.T @ y
        beta, _, rank, _ = np.linalg.lstsq(xtx, xty, rcond=None)  # normal equations: p x p, not n x p
        return float(y @ y - 2 * beta @ xty + beta @ xtx @ beta), int(rank)

    rss_f, rank_f = rss(full.X)
    rss_r, rank_r = rss(red.X)
    df1, df2 = rank_f - rank_r, len(y) - rank_f
    F = ((rss_r - rss_f) / df1) / (rss_f / df2) if df1 > 0 and rss_f > 0 else float("nan")
    return TestResult(family="demographic-interaction/rating-level (not a finding)", level="rating",
                      test="OLS two-way ANOVA interaction F, all ratings", statistic=F, statistic_name="F",
                      df=df1, df2=df2, p=float(stats.f.sf(F, df1, df2)) if np.isfinite(F) else None,
                      n=len(y), n_ratings=len(y), n_raters=int(data["rater"].nunique()), finding=False,
                      label=NAIVE_LABEL, **base)
