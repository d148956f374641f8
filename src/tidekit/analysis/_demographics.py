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

import contextlib
from collections.abc import Iterator
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
    largest_difference,
    mean_ci,
    ordered_trend,
    rank_biserial,
    welch_diff_ci,
)
from tidekit.analysis._models import fit_mixed
from tidekit.analysis._results import GroupMean, TestResult, largest_contrast
from tidekit.rating import DEMOGRAPHICS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NAIVE_LABEL", "attribute_effects", "level_order", "skip_on_failure"]

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


def _role(chosen: str, this: str) -> str:
    return "primary" if chosen == this else "sensitivity"


def _omnibus_estimate(groups: dict[str, np.ndarray], level: float, what: str) -> dict:
    """Estimate fields of an omnibus test: the largest difference between groups, Welch CI."""
    b, a, d, lo, hi = largest_difference(groups, level)
    if len(groups) == 2:
        kind, method = f"{what}, {b} - {a}", "Welch t"
    else:
        kind = f"largest difference between groups in {what}, {b} - {a}"
        method = "Welch t for that pair (not adjusted for choosing it; see the pairwise rows)"
    return {"estimate": d, "ci_low": lo, "ci_high": hi, "ci_level": level, "ci_method": method,
            "estimate_kind": kind}


def level_order(attr: str, levels: list[str], config: AnalysisConfig) -> list[str] | None:
    """The attribute's levels lowest first, when it is ordered (configured, the rating app's
    order, or levels that all start with a number); None when the order is unknown."""
    import re

    candidates = [config.ordered[attr]] if attr in config.ordered else []
    if attr in ("age_group", "education") and attr in DEMOGRAPHICS:
        candidates.append([v for v, _ in DEMOGRAPHICS[attr][1]])
    for order in candidates:
        if set(levels) <= set(order):
            return [lv for lv in order if lv in levels]
    numbers = [re.match(r"\s*(\d+(?:\.\d+)?)", lv) for lv in levels]
    if all(numbers):
        return sorted(levels, key=lambda lv: float(re.match(r"\s*(\d+(?:\.\d+)?)", lv).group(1)))  # type: ignore[union-attr]
    return None


def attribute_effects(df: pd.DataFrame, raters: pd.DataFrame, attr: str, factors: list[str],
                      config: AnalysisConfig) -> tuple[list[TestResult], list[GroupMean], list[str]]:
    """Main effect of ``attr`` and its interactions with ``factors``.

    ``config.primary`` names the primary (finding) test of the main effect and of the
    interactions; every other test is a sensitivity analysis. A test the data cannot support
    (too few raters per level, a model that cannot be estimated) is listed in the skipped
    reasons and the rest still run.
    """
    known = raters[attr].dropna()
    sub = df[df["rater"].isin(known.index)].copy()
    sub["attr"] = sub["rater"].map(known)
    levels = sorted(known.unique())
    if len(levels) < 2:
        return [], [], [f"{attr}: skipped, one level only ({', '.join(levels) or 'no rater gave it'})"]
    chosen = config.primary.main_test(attr)
    tests: list[TestResult] = []
    means: list[GroupMean] = []
    skipped: list[str] = []
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
    if min(counts.values()) < 2 or len(rmeans) <= len(levels):
        skipped.append(f"{attr}: rater-level tests skipped, too few raters per level "
                       f"({', '.join(f'{k}: {v}' for k, v in counts.items())}; each level needs 2)")
    else:
        tests.extend(_rater_level_main(attr, groups, counts, pairs_role=_role(chosen, "rater-level"),
                                       base=base, flags=flags, level_ci=level_ci, config=config))
    with skip_on_failure(f"{attr}: LMM", skipped):
        tests.extend(_lmm_main(sub, attr, base, flags, level_ci, config, _role(chosen, "lmm")))
    if config.ordinal == "clustered":
        with skip_on_failure(f"{attr}: ordinal model", skipped):
            from tidekit.analysis._ordinal import ordinal_comparison

            ordinal = ordinal_comparison(sub.assign(**{attr: sub["attr"]}), attr, levels[0], config,
                                         role=_role(chosen, "ordinal"), analysis="demographic",
                                         family=f"demographic-main/ordinal:{attr}")
            if not ordinal:
                skipped.append(f"{attr}: ordinal model skipped, fewer than 3 distinct ratings or aliased levels")
            tests.extend(ordinal)
    order = level_order(attr, levels, config)
    if order is not None and len(rmeans) > 2:
        tr = ordered_trend([groups[lv] for lv in order], level_ci)
        tests.append(TestResult(
            family=f"demographic-main/trend:{attr}", test="Kendall tau-b trend of rater means over ordered levels",
            term=f"{attr} trend ({' < '.join(order)})", level="rater", role=_role(chosen, "trend"),
            estimate=tr["slope"], estimate_kind="change in mean rating per level step (least-squares slope)",
            ci_low=tr["ci_low"], ci_high=tr["ci_high"], ci_level=level_ci, ci_method="t, n - 2 df",
            statistic=tr["tau"], statistic_name="tau_b", p=tr["p"], effect_size=tr["tau"],
            effect_size_name="kendall_tau_b", n=len(rmeans), flags=list(flags), extra={"order": order},
            **{k: v for k, v in base.items() if k != "n_raters"}, n_raters=len(rmeans)))
    elif chosen == "trend":
        skipped.append(f"{attr}: trend test skipped, the order of its levels is unknown (give "
                       f"analysis.ordered.{attr}: [lowest, ..., highest])" if order is None
                       else f"{attr}: trend test skipped, too few raters")
    if config.rating_level_tests:
        raw = {lv: sub.loc[sub["attr"] == lv, "rating"].to_numpy() for lv in levels}
        with skip_on_failure(f"{attr}: rating-level test", skipped):
            f2, _ = _group_tests(raw, "rating")
            f2["n"] = len(sub)
            tests.append(TestResult(family="demographic-main/rating-level (not a finding)", term=attr,
                                    level="rating", role="descriptive", label=NAIVE_LABEL, **{**base, **f2}))
    for factor in factors:
        with skip_on_failure(f"{attr} x {factor}", skipped):
            t, why = _interaction(sub, attr, factor, config)
            tests.extend(t)
            skipped.extend(why)
    return tests, means, skipped


def _rater_level_main(attr: str, groups: dict[str, np.ndarray], counts: dict[str, int], pairs_role: str,
                      base: dict, flags: list[str], level_ci: float, config: AnalysisConfig) -> list[TestResult]:
    """Mann-Whitney / Kruskal-Wallis on rater means, Dunn post-hoc pairs (gated by the omnibus)."""
    levels = list(groups)
    tests = []
    fields, pairs = _group_tests(groups, "rater")
    fields.update(_omnibus_estimate(groups, level_ci, "mean of rater means"))
    family = "demographic-main/rater-level"
    tests.append(TestResult(family=family, term=attr, level="rater", flags=list(flags), role=pairs_role,
                            extra={"group_means": {k: float(np.mean(v)) for k, v in groups.items()}},
                            **{**base, **fields}))
    if len(levels) > 2:
        import pandas as pd
        import scikit_posthocs as sp

        long = pd.DataFrame({"v": np.concatenate(list(groups.values())),
                             "g": np.repeat(levels, [counts[lv] for lv in levels])})
        dunn = sp.posthoc_dunn(long, val_col="v", group_col="g", p_adjust=None)
        for b, a, delta in pairs:
            d, lo, hi = welch_diff_ci(groups[b], groups[a], level_ci)
            tests.append(TestResult(
                family=f"demographic-main/dunn:{attr}", test="Dunn post-hoc (rank z)", term=f"{attr}: {b} vs {a}",
                level="rater", p=float(dunn.loc[b, a]), effect_size=delta, effect_size_name="cliffs_delta",
                estimate=d, estimate_kind=f"difference in mean of rater means, {b} - {a}", ci_low=lo, ci_high=hi,
                ci_level=level_ci, ci_method="Welch t", role=pairs_role, extra={"gate": family},
                n=counts[a] + counts[b], flags=_small({a: counts[a], b: counts[b]}, config.min_cell_raters),
                **{k: v for k, v in base.items() if k != "n_raters"}, n_raters=counts[a] + counts[b]))
    return tests


def _lmm_main(sub: pd.DataFrame, attr: str, base: dict, flags: list[str], level_ci: float,
              config: AnalysisConfig, role: str) -> list[TestResult]:
    mm = fit_mixed(sub.assign(**{attr: sub["attr"]}), [attr], max_dense_levels=config.max_dense_levels)
    omni = mm.fit.f_test(mm.term_matrix(attr))
    lmm_base = {**base, "level": "rating", "model": mm.formula, "n": len(sub), "flags": [*flags, *mm.notes],
                "role": role}
    contrasts = []
    family = "demographic-main/lmm"
    for lv in mm.design.levels[attr][1:]:
        L = mm.vector({f"{attr}[{lv}]": 1.0})
        if L is None:
            continue
        contrasts.append(TestResult(
            family=f"demographic-main/lmm-contrast:{attr}", term=f"{attr}: {lv} - {mm.design.levels[attr][0]}",
            **mm.wald_t(L, level_ci), **{**lmm_base, "extra": {"gate": family}}))
    omni_est = largest_contrast(contrasts, len(mm.design.levels[attr]) == 2)
    return [TestResult(family=family, test="LMM F test (Satterthwaite df)", term=attr, statistic=omni["F"],
                       statistic_name="F", df=omni["df1"], df2=omni["df2"], p=omni["p"], **omni_est, **lmm_base),
            *contrasts]


@contextlib.contextmanager
def skip_on_failure(what: str, skipped: list[str]) -> Iterator[None]:
    """Turn a test the data cannot support into a skipped reason, so the rest of the analysis runs.

    Catches what unestimable designs raise (too few ratings for the model, singular matrices,
    constant data in scipy's tests), nothing broader.
    """
    try:
        yield
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as err:
        skipped.append(f"{what}: skipped, the data cannot support it ({err})")


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

    chosen = config.primary.demographic_interaction
    flevels = sorted(data[factor].unique())
    if len(flevels) >= 2:  # the baseline first, so contrasts read 'other - baseline'
        ref = reference_level(data, factor, config)
        flevels = [ref] + [x for x in flevels if x != ref]
    if len(flevels) < 2:
        return [], [f"{attr} x {factor}: skipped, {factor} has one level"]
    level_ci = 1 - config.alpha
    tests: list[TestResult] = []
    skipped: list[str] = []
    term = f"{attr} x {factor}"
    attr_of = data.groupby("rater")["attr"].first()
    cell = data.groupby(["rater", factor])["rating"].mean().unstack(factor)
    complete = cell[flevels].dropna()
    base = {"analysis": "demographic", "term": term, "n_items": int(data["item"].nunique())}
    sp = _split_plot(complete, attr_of) if len(complete) >= 3 else None
    if sp is not None:
        counts = attr_of.reindex(complete.index).value_counts().to_dict()
        grp = attr_of.reindex(complete.index)
        # the estimate: the largest group difference in any level-vs-baseline contrast
        best: dict = {}
        for f in flevels[1:]:
            contrast = complete[f] - complete[flevels[0]]
            values = {lv: contrast[grp == lv].to_numpy() for lv in sorted(grp.unique())}
            if min(len(v) for v in values.values()) < 1:
                continue
            est = _omnibus_estimate(values, level_ci, f"each rater's mean {f} - {flevels[0]}")
            if not best or abs(est["estimate"]) > abs(best["estimate"]):
                best = est
        if best and (len(flevels) > 2 or len(counts) > 2):
            best["ci_method"] = "Welch t for that pair and contrast (not adjusted for choosing them)"
        tests.append(TestResult(
            family="demographic-interaction/rater-anova", level="rater", role=_role(chosen, "rater-anova"),
            test=f"mixed ANOVA on rater-by-{factor} means (between: {attr}; within: {factor})",
            statistic=sp["F"], statistic_name="F", df=sp["df1"], df2=sp["df2"], p=sp["p"],
            effect_size=sp["partial_eta_squared"], effect_size_name="partial_eta_squared", n=len(complete),
            n_raters=len(complete), n_ratings=int(data["rater"].isin(complete.index).sum()),
            flags=_small(counts, config.min_cell_raters)
            + ([f"{len(cell) - len(complete)} rater(s) without every {factor} level left out"]
               if len(complete) < len(cell) else []), **best, **base))
    else:
        skipped.append(f"{term}: mixed ANOVA skipped, too few raters with every {factor} level "
                       f"({len(complete)}) or one {attr} level among them")
    if len(flevels) <= MAX_PAIRWISE_LEVELS:
        for a, b in combinations(flevels, 2):
            both = cell[[a, b]].dropna()
            contrast = (both[b] - both[a])
            grp = attr_of.reindex(both.index)
            alevels = sorted(grp.unique())
            values = {lv: contrast[grp == lv].to_numpy() for lv in alevels}
            if len(alevels) < 2 or min(len(v) for v in values.values()) < 2:
                skipped.append(f"{term} ({b} - {a}): rater-contrast test skipped, fewer than 2 raters in some "
                               f"{attr} level rated both")
                continue
            fields, _ = _group_tests(values, "rater")
            fields.update(_omnibus_estimate(values, level_ci, f"each rater's mean {b} - {a}"))
            extra = {"group_contrasts": {lv: float(np.mean(v)) for lv, v in values.items()},
                     "contrast": f"{b} - {a} (each rater's mean difference)"}
            tests.append(TestResult(
                family="demographic-interaction/rater-contrast", level="rater", extra=extra,
                role=_role(chosen, "rater-contrast"),
                n_raters=len(both), n_ratings=int(data[data[factor].isin([a, b])]["rater"].isin(both.index).sum()),
                flags=_small({k: len(v) for k, v in values.items()}, config.min_cell_raters),
                **{**base, "term": f"{attr} x {factor} ({b} - {a})"}, **fields))
        if factor in ("system", "condition") and len(complete) >= 2:
            tests.extend(_preference(complete, attr_of, attr, factor, config, base, _role(chosen, "preference")))
    with skip_on_failure(f"{term}: LMM", skipped):
        tests.extend(_lmm_interaction(data, attr, factor, flevels, base, level_ci, config, _role(chosen, "lmm")))
    if config.rating_level_tests:
        with skip_on_failure(f"{term}: rating-level test", skipped):
            tests.append(_naive_interaction(data, attr, factor, base))
    return tests, skipped


def _lmm_interaction(data: pd.DataFrame, attr: str, factor: str, flevels: list[str], base: dict,
                     level_ci: float, config: AnalysisConfig, role: str) -> list[TestResult]:
    mm = fit_mixed(data.assign(**{attr: data["attr"]}), [attr, factor], [(attr, factor)],
                   reference={factor: flevels[0]}, rater_by=factor if config.rater_by_factor_effect else None,
                   max_dense_levels=config.max_dense_levels)
    it = mm.fit.f_test(mm.term_matrix(f"{attr}:{factor}"))
    lmm_base = {**base, "level": "rating", "model": mm.formula, "n": len(data), "n_ratings": len(data),
                "n_raters": int(data["rater"].nunique()), "flags": list(mm.notes), "role": role}
    family = "demographic-interaction/lmm"
    coefs = []
    alv, flv = mm.design.levels[attr], mm.design.levels[factor]
    for x in alv[1:]:
        for f in flv[1:]:
            L = mm.vector({f"{attr}[{x}]:{factor}[{f}]": 1.0})
            if L is None:
                continue
            kind = f"({f} - {flv[0]}) for {x} minus ({f} - {flv[0]}) for {alv[0]} (points)"
            coefs.append(TestResult(family=f"demographic-interaction/lmm-coef:{attr}x{factor}",
                                    **mm.wald_t(L, level_ci, kind),
                                    **{**lmm_base, "term": f"{attr}[{x}] x {factor}[{f}]", "extra": {"gate": family}}))
    shown = coefs if len(flv) <= MAX_PAIRWISE_LEVELS else []
    return [TestResult(family=family, test="LMM F test (Satterthwaite df)", statistic=it["F"], statistic_name="F",
                       df=it["df1"], df2=it["df2"], p=it["p"], **largest_contrast(coefs, len(coefs) == 1),
                       **lmm_base), *shown]


def _preference(complete: pd.DataFrame, attr_of: pd.Series, attr: str, factor: str, config: AnalysisConfig,
                base: dict, role: str) -> list[TestResult]:
    """Chi-square of attribute x the level each rater rated highest; the estimate is the largest
    difference between attribute groups in the share of raters preferring one level."""
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
    shares = table.div(table.sum(axis=1), axis=0)
    spread = shares.max(axis=0) - shares.min(axis=0)
    col = str(spread.idxmax())
    hi_g, lo_g = shares[col].idxmax(), shares[col].idxmin()
    p1, n1, p2, n2 = shares.loc[hi_g, col], table.loc[hi_g].sum(), shares.loc[lo_g, col], table.loc[lo_g].sum()
    se = float(np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2))
    q = float(stats.norm.ppf(1 - config.alpha / 2))
    est = {"estimate": float(p1 - p2), "ci_low": float(p1 - p2 - q * se), "ci_high": float(p1 - p2 + q * se),
           "ci_level": 1 - config.alpha, "ci_method": "Wald, for that pair (not adjusted for choosing it)",
           "estimate_kind": f"largest difference in the share of raters preferring {col}: {hi_g} - {lo_g}"}
    flags = ([f"small expected counts: {small} of {expected.size} cells below 5 (chi-square approximate)"]
             if small else [])
    return [TestResult(
        family="demographic-interaction/preference-chi2", level="rater",
        test=f"chi-square of {attr} x preferred {factor} (one row per rater)", statistic=float(chi2),
        statistic_name="chi2", df=float(dof), p=float(p), effect_size=cramers_v(chi2, int(table.to_numpy().sum()),
                                                                              table.shape),
        effect_size_name="cramers_v", n=int(table.to_numpy().sum()), n_raters=int(table.to_numpy().sum()),
        flags=flags, extra={"table": {str(r): {str(c): int(v) for c, v in row.items()}
                                      for r, row in table.iterrows()}}, role=role, **est,
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
                      n=len(y), n_ratings=len(y), n_raters=int(data["rater"].nunique()), role="descriptive",
                      label=NAIVE_LABEL, **base)
