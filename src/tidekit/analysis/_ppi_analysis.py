"""From ratings and scores to prediction-powered estimates of every system, condition and pair.

The estimator is in :mod:`tidekit.analysis._ppi`; this module decides the units and the
targets. Every scored conversation is a unit; the rated ones are the labelled sample. For each
rating column (the overall rating and each empathy factor) a reply's human value is its
rater-centred mean rating (:func:`~tidekit.analysis._ppi.rater_centred_means`). A target is a fixed combination of systems per conversation: one
system (its mean), the systems of one condition (their average), or two systems (their
difference, paired by conversation). Its per-conversation human value and prediction go
through :func:`~tidekit.analysis._ppi.ppi_mean`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tidekit.analysis._config import AnalysisConfig, PPIConfig
from tidekit.analysis._effects import adjust
from tidekit.analysis._ppi import (
    MeanEstimate,
    cross_fit,
    ppi_mean,
    ppi_mean_stratified,
    rater_centred_means,
)
from tidekit.analysis._ppi_design import Design, read_design
from tidekit.analysis._results import PPIDesignRow, PPIEstimate, PPIResult
from tidekit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ASSUMPTIONS", "ppi_analysis", "ppi_frames", "targets"]

ASSUMPTIONS = [
    "The rated conversations are a probability sample of the scored ones with known inclusion probabilities: "
    "what 'tidekit rate create' draws and records (all of them, a seeded simple random sample of "
    "rating.study.conversations, or one stratified by rating.study.strata, whose strata are then weighted by "
    "their share of the scored conversations). Scores covering conversations outside the study's sampling "
    "frame are an error; ratings without a recorded design are assumed a simple random sample (stated). A "
    "hand-picked or self-selected subset makes these intervals invalid. A rated and an unrated set that "
    "differ in the predictor are flagged.",
    "The predictor never saw the ratings it is corrected on: judge and metric columns are computed without "
    "them; a learned scorer (scorer_* columns) must have been trained on other labels (tidekit cannot check "
    "this); a combination of several columns is cross-fitted over conversation folds.",
    "Conversations are the independent units: a system's replies are averaged per conversation and paired "
    "differences are taken within a conversation, so the conversation effect cancels.",
    "Rater leniency is removed by rater-centring (the rater terms of a least-squares fit of rating ~ reply + "
    "rater). The mean leniency of the raters who took part stays in every mean: its variance is added to the "
    "means' (it cancels in differences). What is left of a rater's leniency after centring still links the "
    "conversations that rater rated; the intervals ignore that, and the simulation in docs/analysis.md "
    "measures their coverage with it.",
]


def targets(systems: list[str], condition_of: dict[str, str]) -> list[tuple[str, str, dict[str, float]]]:
    """(kind, name, weight per system) of every target: each system, each condition with two or more
    systems, and each pair of systems ('b - a', a before b in ``systems``)."""
    out: list[tuple[str, str, dict[str, float]]] = [("system", s, {s: 1.0}) for s in systems]
    by_condition: dict[str, list[str]] = {}
    for s in systems:
        if s in condition_of:
            by_condition.setdefault(condition_of[s], []).append(s)
    if any(len(v) > 1 for v in by_condition.values()):
        out += [("condition", c, {s: 1 / len(v) for s in v}) for c, v in sorted(by_condition.items())]
    out += [("difference", f"{b} - {a}", {b: 1.0, a: -1.0})
            for i, a in enumerate(systems) for b in systems[i + 1:]]
    return out


def _combine(values: np.ndarray, systems: list[str], weights: dict[str, float]) -> np.ndarray:
    """Per conversation (row): the weighted sum over systems (columns); NaN where a needed one is missing."""
    idx = [systems.index(s) for s in weights]
    return values[:, idx] @ np.array(list(weights.values()))


def ppi_frames(df: pd.DataFrame, scores: pd.DataFrame, ppi: PPIConfig, rating: str, seed: int
               ) -> tuple[pd.DataFrame, pd.DataFrame, str, float]:
    """(human values, predictions, how the predictor was built, the variance of the raters' mean
    leniency) with the values and predictions as conversation x system tables for
    the rating column ``rating`` of the prepared ratings ``df``; ``scores`` holds one row per
    (conversation_id, system) with the predictor columns. Conversations of ``scores`` that have no
    rating are the unrated units."""
    import pandas as pd

    y_long, shift_var = rater_centred_means(df, rating, ppi.rater_adjustment == "centre")
    y_wide = y_long.pivot(index="conversation", columns="system", values="y")
    cols = ppi.predictors()
    s = scores.rename(columns={"conversation_id": "conversation"})
    if len(cols) == 1:
        f_wide = s.pivot(index="conversation", columns="system", values=cols[0])
        return y_wide, f_wide, f"the score column {cols[0]} as it is", shift_var
    s = s.dropna(subset=cols)
    key = ["conversation", "system"]
    rated = s.merge(y_long[[*key, "y"]], on=key, how="inner")
    unrated = s[~s["conversation"].isin(set(rated["conversation"]))]
    pred, pred_u = cross_fit(rated[cols].to_numpy(float), rated["y"].to_numpy(float),
                             rated["conversation"].to_numpy(), unrated[cols].to_numpy(float), ppi.folds, seed)
    f_long = pd.concat([rated[key].assign(f=pred), unrated[key].assign(f=pred_u)])
    f_wide = f_long.pivot(index="conversation", columns="system", values="f")
    k = min(ppi.folds, rated["conversation"].nunique())
    return y_wide, f_wide, (f"least squares of the reply's human value on {', '.join(cols)} (and an intercept), "
                            f"cross-fitted over {k} conversation folds"), shift_var


def _estimate(kind: str, name: str, label: str, m: MeanEstimate) -> PPIEstimate:
    diff = kind == "difference"
    return PPIEstimate(kind=kind, target=name, rating=label, estimate=m.estimate, ci_low=m.ci_low,
                       ci_high=m.ci_high, se=m.se, p=m.p_value() if diff else None, human_estimate=m.human,
                       human_ci_low=m.human_ci_low, human_ci_high=m.human_ci_high, human_se=m.human_se,
                       human_p=m.p_value(human=True) if diff else None, lam=m.lam, correlation=m.correlation,
                       n_rated=m.n, n_unrated=m.N, ess_ratio=m.ess_ratio, effective_n=m.n * m.ess_ratio,
                       width_ratio=m.width_ratio)


def _scores_table(scores: pd.DataFrame, cols: list[str], explicit: bool) -> tuple[pd.DataFrame | None, str | None]:
    """One row per (conversation_id, system) with the predictor columns, or why there is none."""
    from tidekit.analysis._metric_human import metric_columns

    numeric = metric_columns(scores, list(scores.columns))
    missing = [c for c in cols if c not in numeric]
    if missing:
        msg = (f"the scores have no numeric column {', '.join(missing)} (numeric columns: "
               f"{', '.join(c for c in numeric if c not in ('age',)) or 'none'})")
        if explicit:
            raise ConfigError(f"ppi.predictor: {msg}; set ppi.predictor to one of them, or ppi=null to turn the "
                              "prediction-powered estimates off")
        return None, f"prediction-powered estimates skipped: {msg}; set ppi.predictor"
    s = scores
    if "status" in s.columns:
        s = s[s["status"].fillna("scored") == "scored"]
    s = s.assign(conversation_id=s["conversation_id"].astype(str), system=s["system"].astype(str))
    return s.groupby(["conversation_id", "system"], as_index=False)[cols].mean(), None


def ppi_analysis(df: pd.DataFrame, scores: pd.DataFrame, config: AnalysisConfig, *,
                 extra_ratings: Sequence[str] = (), design: bool = False) -> tuple[PPIResult | None, list[str]]:
    """Prediction-powered estimates for the prepared ratings ``df`` (canonical columns) and the
    scores table; (None, reasons) when they cannot be made. ``design`` adds the design help."""
    from scipy import stats

    ppi = config.ppi
    if ppi is None:
        return None, []
    if not {"conversation", "system"} <= set(df.columns):
        return None, ["prediction-powered estimates skipped: the ratings have no conversation or system column"]
    cols = ppi.predictors()
    table, why = _scores_table(scores, cols, explicit="predictor" in ppi.model_fields_set)
    if table is None:
        return None, [why or ""]
    flags: list[str] = []
    rated_systems = sorted(df["system"].dropna().unique())
    scored_systems = set(table["system"])
    systems = [s for s in rated_systems if s in scored_systems]
    if len(systems) < len(rated_systems):
        flags.append(f"rated system(s) without scores, left out: "
                     f"{', '.join(s for s in rated_systems if s not in scored_systems)}")
    if not systems:
        return None, ["prediction-powered estimates skipped: no rated system has scores (check that the "
                      "ratings and scores name systems alike)"]
    table = table[table["system"].isin(systems)]
    condition_of: dict[str, str] = {}
    if "condition" in df.columns:
        condition_of = {str(k): str(v) for k, v in
                        df.dropna(subset=["system", "condition"]).groupby("system")["condition"].first().items()}
    rating_cols = [("rating", config.columns.rating)] + [(c, c[2:]) for c in extra_ratings]
    estimates: list[PPIEstimate] = []
    fit = ""
    drawn: Design | None = None  # how the rated conversations were drawn
    kept_unrated: pd.Index | None = None
    n_rated = n_unrated = 0
    for col, label in rating_cols:
        y_wide, f_wide, fit, shift_var = ppi_frames(df, table, ppi, col, config.seed)
        y_wide = y_wide.reindex(columns=systems)
        f_wide = f_wide.reindex(columns=systems)
        rated = y_wide.index.intersection(f_wide.index)
        unrated = f_wide.index.difference(y_wide.index)
        if col == "rating":
            drawn = read_design(df, scores, f_wide.index, ppi.sampling)
            flags += drawn.flags
            if drawn.stratum_of is not None:  # strata nobody rated are outside what the sample describes
                sampled = {drawn.stratum_of[str(c)] for c in rated}
                unrated = unrated[[drawn.stratum_of[str(c)] in sampled for c in unrated]]
        else:
            assert kept_unrated is not None
            unrated = unrated.intersection(kept_unrated)
        kept_unrated = unrated
        assert drawn is not None
        st_r, st_u = drawn.strata(rated), drawn.strata(unrated)
        if col == "rating":
            n_rated, n_unrated = len(rated), len(unrated)
            lost = len(y_wide.index.difference(f_wide.index))
            if lost:
                flags.append(f"{lost} rated conversation(s) have no scores and are left out")
            if n_unrated == 0:
                flags.append(f"every scored conversation is rated (n = N = {n_rated}): with no unrated "
                             "conversations PPI equals the human-only estimate (lambda 0); the scores add "
                             "nothing here. Rate a random subset of more scored conversations to gain from them.")
            elif n_unrated >= 2 and n_rated >= 2 and st_r is None:  # (strata differ by drawn)
                fbar = f_wide.mean(axis=1)
                t = stats.ttest_ind(fbar.loc[rated].dropna(), fbar.loc[unrated].dropna(), equal_var=False)
                if float(t.pvalue) < 0.01:
                    flags.append(f"rated and unrated conversations differ in the mean predictor (Welch p = "
                                 f"{float(t.pvalue):.2g}): check that the rated ones were sampled at random")
        rows: list[PPIEstimate] = []
        y_r = y_wide.loc[rated].to_numpy(float)
        f_r = f_wide.loc[rated].to_numpy(float)
        f_u = f_wide.loc[unrated].to_numpy(float)
        for kind, name, weights in targets(systems, condition_of):
            y, f, fu = (_combine(v, systems, weights) for v in (y_r, f_r, f_u))
            ok, ok_u = np.isfinite(y) & np.isfinite(f), np.isfinite(fu)
            if int(ok.sum()) < 2:
                continue
            extra = shift_var * sum(weights.values()) ** 2
            if st_r is None or st_u is None:
                m = ppi_mean(y[ok], f[ok], fu[ok_u], alpha=config.alpha, interval=ppi.interval, extra_var=extra)
            else:
                try:
                    m = ppi_mean_stratified(y[ok], f[ok], fu[ok_u], st_r[ok], st_u[ok_u], alpha=config.alpha,
                                            interval=ppi.interval, extra_var=extra)
                except ValueError as exc:
                    flags.append(f"{name} ({label}): no stratified estimate: {exc}")
                    continue
            rows.append(_estimate(kind, name, label, m))
        diffs = [r for r in rows if r.kind == "difference"]
        for r, padj in zip(diffs, adjust([r.p for r in diffs], "holm"), strict=True):
            r.p_adjusted = padj
        estimates += rows
    if not estimates:
        return None, ["prediction-powered estimates skipped: fewer than 2 rated conversations with scores"]
    quantile = "t quantile, n - 1 df, unbiased variances" if ppi.interval == "t" else "normal quantile (as ppi_py)"
    result = PPIResult(
        predictor=cols, predictor_fit=fit, interval=f"PPI++ (power-tuned lambda), {quantile}",
        alpha=config.alpha, sampling=drawn.text if drawn else "", rated_conversations=n_rated,
        unrated_conversations=n_unrated, systems=systems,
        estimates=estimates, assumptions=list(ASSUMPTIONS), flags=flags,
        rater_adjustment=("rater-centred mean of the reply's ratings" if ppi.rater_adjustment == "centre"
                          else "plain mean of the reply's ratings"))
    if design:
        result.design = design_rows(result, ppi)
    return result, []


def design_rows(result: PPIResult, ppi: PPIConfig, *, alpha: float | None = None) -> list[PPIDesignRow]:
    """Rated conversations needed for ``ppi.target_width``, with and without the predictor, from this
    pilot's SDs and correlations of the overall rating (or the configured ones)."""
    from tidekit.analysis._power import rated_for_width

    alpha = result.alpha if alpha is None else alpha
    population = result.rated_conversations + result.unrated_conversations
    rows = []
    overall = [e for e in result.estimates if e.rating == result.estimates[0].rating]
    for kind, label in (("system", "system mean"), ("difference", "paired difference")):
        own = [e for e in overall if e.kind == kind]
        if not own:
            continue
        sd = ppi.pilot_sd or float(np.median([e.human_se * np.sqrt(e.n_rated) for e in own]))
        corrs = [e.correlation for e in own if e.correlation is not None]
        rho = ppi.pilot_correlation if ppi.pilot_correlation is not None else (
            float(np.median(corrs)) if corrs else 0.0)
        source = ", ".join(["sd " + ("from the config" if ppi.pilot_sd else "median over targets, this pilot"),
                            "correlation " + ("from the config" if ppi.pilot_correlation is not None
                                              else "median over targets, this pilot")])
        n_h, n_p = rated_for_width(ppi.target_width, sd, rho, population, alpha)
        rows.append(PPIDesignRow(target=label, target_width=ppi.target_width, sd=sd, correlation=rho,
                                 conversations=population, n_human_only=n_h, n_ppi=n_p, source=source))
    return rows


def summary_rows(result: PPIResult) -> list[dict[str, Any]]:
    """The overall rating's system estimates as table rows (human-only beside PPI)."""
    first = result.estimates[0].rating if result.estimates else None
    return [{"system": e.target, "human_only": e.human_estimate, "human_ci_low": e.human_ci_low,
             "human_ci_high": e.human_ci_high, "ppi": e.estimate, "ppi_ci_low": e.ci_low, "ppi_ci_high": e.ci_high,
             "lambda": e.lam, "correlation": e.correlation, "n_rated": e.n_rated, "n_unrated": e.n_unrated,
             "effective_n": e.effective_n, "width_ratio": e.width_ratio}
            for e in result.estimates if e.rating == first and e.kind == "system"]
