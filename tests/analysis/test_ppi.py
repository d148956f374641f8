"""Prediction-powered estimates: equal to ppi_py on independent data, calibrated by simulation,
and wired into ``analyze`` with the units, checks and errors of docs/analysis.md."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidekit.analysis import AnalysisConfig, analyze, ppi_mean, ppi_ols, rated_for_width
from tidekit.analysis._calibration import PPIDesign, calibrate_ppi, simulate_ppi_study
from tidekit.analysis._ppi import cross_fit, rater_offsets
from tidekit.errors import ConfigError

ppi_py = pytest.importorskip("ppi_py", reason="the oracle: pip install ppi-python (the dev extra has it)")


def _independent(seed: int, n: int = 150, N: int = 1200) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = rng.normal(4.2, 1.1, n)
    f = 0.6 * y + rng.normal(0, 0.6, n) + 0.4
    fu = 0.6 * rng.normal(4.2, 1.1, N) + rng.normal(0, 0.6, N) + 0.4
    return y, f, fu


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_equals_ppi_py(seed: int) -> None:
    # ppi_py.ppi_mean_ci: power-tuned lambda clipped to [0, 1], normal interval, ddof-0 variances
    y, f, fu = _independent(seed)
    lo, hi = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.05)
    point = ppi_py.ppi_mean_pointestimate(y, f, fu)
    m = ppi_mean(y, f, fu, alpha=0.05, clip=(0.0, 1.0), interval="z")
    assert abs(m.estimate - float(np.ravel(point)[0])) < 1e-8
    assert abs(m.ci_low - float(np.ravel(lo)[0])) < 1e-8
    assert abs(m.ci_high - float(np.ravel(hi)[0])) < 1e-8
    # a fixed lambda and the classical interval (lambda 0) too
    lo1, hi1 = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.05, lam=1.0)
    m1 = ppi_mean(y, f, fu, alpha=0.05, lam=1.0, interval="z")
    assert abs(m1.ci_low - float(np.ravel(lo1)[0])) < 1e-8 and abs(m1.ci_high - float(np.ravel(hi1)[0])) < 1e-8
    lo0, hi0 = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.05, lam=0.0)
    assert abs(m.human_ci_low - float(np.ravel(lo0)[0])) < 1e-8
    assert abs(m.human_ci_high - float(np.ravel(hi0)[0])) < 1e-8


@pytest.mark.parametrize("seed", [0, 1])
def test_ols_coefficients_equal_ppi_py(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, N = 200, 1500
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.binomial(1, 0.5, n)])
    Xu = np.column_stack([np.ones(N), rng.normal(size=N), rng.binomial(1, 0.5, N)])
    beta = np.array([4.0, 0.5, -0.3])
    y = X @ beta + rng.normal(0, 1, n)
    f = y + rng.normal(0, 0.8, n)
    fu = Xu @ beta + rng.normal(0, 1, N) + rng.normal(0, 0.8, N)
    lo, hi = ppi_py.ppi_ols_ci(X, y, f, Xu, fu, alpha=0.05)
    est = ppi_ols(X, y, f, Xu, fu, alpha=0.05)
    np.testing.assert_allclose(est.ci_low, lo, rtol=0, atol=1e-8)
    np.testing.assert_allclose(est.ci_high, hi, rtol=0, atol=1e-8)
    # ppi_py's interval is centred on the estimate at its twice-tuned lambda; its
    # ppi_ols_pointestimate(lam=None) tunes once, so the point is compared at the same lambda
    point = ppi_py.ppi_ols_pointestimate(X, y, f, Xu, fu, lam=est.lam)
    np.testing.assert_allclose(est.coef, point, rtol=0, atol=1e-8)
    np.testing.assert_allclose(est.coef, (lo + hi) / 2, rtol=0, atol=1e-8)


def test_tuned_lambda_is_the_variance_minimiser_and_zero_without_unrated_units() -> None:
    y, f, fu = _independent(3)
    best = ppi_mean(y, f, fu, interval="z")
    grid = [ppi_mean(y, f, fu, lam=lam, interval="z").se for lam in np.linspace(0, 2, 81)]
    # the plug-in optimum (ppi_py's formula) is within 1% of the best se on a grid, far below lambda 0
    assert best.se <= min(grid) * 1.01 and best.se < 0.8 * grid[0]
    alone = ppi_mean(y, f, np.array([]))
    assert alone.lam == 0 and alone.estimate == pytest.approx(y.mean()) and alone.ess_ratio == pytest.approx(1.0)


def test_t_interval_uses_n_minus_2_df_once_lambda_is_tuned() -> None:
    y, f, fu = _independent(4, n=12, N=60)
    m = ppi_mean(y, f, fu, interval="t")
    assert m.df == 10 and m.human_df == 11
    from scipy import stats

    assert m.ci_high - m.estimate == pytest.approx(stats.t.ppf(0.975, 10) * m.se)
    assert m.p_value(human=True) == pytest.approx(2 * stats.t.sf(abs(m.human / m.human_se), 11))


def test_design_sizes_follow_the_variance_formula() -> None:
    # hand-derived: A = (2 z sd / w)^2 = (2 * 1.959964 * 1.2 / 0.5)^2 = 88.51; PPI n = A (1 - rho^2) / (1 - A rho^2 / N)
    a = (2 * 1.959963984540054 * 1.2 / 0.5) ** 2
    human, with_ppi = rated_for_width(0.5, 1.2, 0.6, 1000)
    assert human == math.ceil(a) == 89
    assert with_ppi == math.ceil(a * 0.64 / (1 - a * 0.36 / 1000))
    assert rated_for_width(0.5, 1.2, 0.0, 1000) == (89, 89)
    assert rated_for_width(0.05, 1.2, 0.9, 1000) == (None, None)  # unreachable with 1000 conversations


def test_cross_fit_never_predicts_a_rated_reply_with_its_own_rating() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 3)
    X = rng.normal(size=(90, 2))
    y = X @ [1.0, -0.5] + rng.normal(0, 0.5, 90)
    pred, pred_u = cross_fit(X, y, groups, rng.normal(size=(40, 2)), folds=5, seed=0)
    y2 = y.copy()
    y2[0] += 100.0  # change one label: its own out-of-fold prediction must not move
    pred2, _ = cross_fit(X, y2, groups, rng.normal(size=(40, 2)), folds=5, seed=0)
    assert pred2[0] == pytest.approx(pred[0])
    assert not np.allclose(pred2, pred)  # the other folds' fits saw it
    assert pred_u.shape == (40,)


def test_rater_offsets_recover_planted_leniency() -> None:
    ratings, _, _ = simulate_ppi_study(PPIDesign(conversations=200, rated=200, systems=3, rater_sd=0.8), seed=1)
    reply = (ratings["conversation_id"] + "|" + ratings["system"]).to_numpy()
    c = rater_offsets(ratings["rater_id"].to_numpy(), reply, ratings["empathy"].to_numpy(float))
    # 90 raters x 20 ratings, planted SD 0.8 on the latent scale (rounding shrinks it a little)
    assert 0.55 < math.sqrt(c.rater_var) < 0.95
    assert c.shift_var == pytest.approx(c.rater_var / ratings["rater_id"].nunique())


def _ratings_and_scores(seed: int = 0, rated: int = 30, conversations: int = 120,
                        **design: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings, scores, _ = simulate_ppi_study(
        PPIDesign(conversations=conversations, rated=rated, systems=3, ratings_per_reply=3, ratings_per_rater=9,
                  correlation=0.9, **design), seed=seed)
    scores = scores.rename(columns={"predictor": "judge_overall"})
    scores["cosine"] = 0.3 * scores["judge_overall"] + np.random.default_rng(seed).normal(0, 0.02, len(scores))
    return ratings, scores


def test_analyze_reports_ppi_beside_human_only(tmp_path: Any) -> None:
    ratings, scores = _ratings_and_scores()
    config = AnalysisConfig(by=[], bootstrap=0, ordinal="none", rating_level_tests=False, power={"simulations": 10})
    result = analyze(config, ratings=ratings, scores=scores, out=tmp_path)
    ppi = result.ppi
    assert ppi is not None and ppi.predictor == ["judge_overall"]
    assert (ppi.rated_conversations, ppi.unrated_conversations) == (30, 90)
    kinds = {e.kind for e in ppi.estimates}
    assert kinds == {"system", "difference"}  # one condition per system: no condition rows
    assert len([e for e in ppi.estimates if e.kind == "difference"]) == 3
    for e in ppi.estimates:
        assert e.ci_low < e.estimate < e.ci_high and e.human_ci_low < e.human_estimate < e.human_ci_high
        assert e.n_rated == 30 and e.n_unrated == 90
    diff = next(e for e in ppi.estimates if e.kind == "difference")
    assert diff.p is not None and diff.p_adjusted is not None and diff.p_adjusted >= diff.p
    # the predictor correlates 0.9 with quality: the intervals are narrower than human-only
    assert np.median([e.width_ratio for e in ppi.estimates]) > 1.05
    assert [d.target for d in ppi.design] == ["system mean", "paired difference"]
    assert all(d.n_ppi is not None and d.n_human_only is not None and d.n_ppi <= d.n_human_only
               for d in ppi.design)
    table = pd.read_csv(tmp_path / "tables" / "ppi.csv")
    assert len(table) == len(ppi.estimates)


def test_multi_score_predictor_is_cross_fitted() -> None:
    ratings, scores = _ratings_and_scores(seed=1)
    config = AnalysisConfig(by=[], bootstrap=0, ordinal="none", rating_level_tests=False,
                            ppi={"predictor": ["judge_overall", "cosine"], "folds": 4})
    result = analyze(config, ratings=ratings, scores=scores)
    assert result.ppi is not None and "cross-fitted over 4 conversation folds" in result.ppi.predictor_fit


def test_every_conversation_rated_is_said_and_gives_the_human_estimate() -> None:
    ratings, scores = _ratings_and_scores(rated=30, conversations=30)
    result = analyze(AnalysisConfig(by=[], bootstrap=0, ordinal="none", rating_level_tests=False),
                     ratings=ratings, scores=scores)
    assert result.ppi is not None
    assert any("n = N = 30" in f for f in result.ppi.flags)
    for e in result.ppi.estimates:
        assert e.lam == 0 and e.estimate == pytest.approx(e.human_estimate) and e.ess_ratio == pytest.approx(1)


def test_a_rated_set_that_differs_from_the_unrated_is_flagged() -> None:
    ratings, scores = _ratings_and_scores(seed=2, rated=40)
    rated = set(ratings["conversation_id"])
    scores.loc[~scores["conversation_id"].isin(rated), "judge_overall"] -= 0.1  # unrated replies look worse
    result = analyze(AnalysisConfig(by=[], bootstrap=0, ordinal="none", rating_level_tests=False),
                     ratings=ratings, scores=scores)
    assert result.ppi is not None and any("sampled at random" in f for f in result.ppi.flags)


def test_a_named_predictor_missing_from_the_scores_is_an_error_the_default_is_skipped() -> None:
    ratings, scores = _ratings_and_scores()
    base = dict(by=[], bootstrap=0, ordinal="none", rating_level_tests=False)
    with pytest.raises(ConfigError, match=r"ppi.predictor: .*scorer_x.*numeric columns: judge_overall"):
        analyze(AnalysisConfig(**base, ppi={"predictor": "scorer_x"}), ratings=ratings, scores=scores)
    result = analyze(AnalysisConfig(**base), ratings=ratings, scores=scores.drop(columns="judge_overall"))
    assert result.ppi is None and any("judge_overall" in s and "ppi.predictor" in s for s in result.skipped)
    off = analyze(AnalysisConfig(**base, ppi=None), ratings=ratings, scores=scores)
    assert off.ppi is None


# Calibration. The default tier runs a quickstart-shaped design (3 systems, 10 of 40 conversations
# rated by 20 raters each) with 200 studies per setting in a few seconds each; the paper-shaped
# design (17 systems, 200 of 1,000 rated, 3 raters) is in the slow tier and benchmarks/calibration.py.
_QUICKSTART = dict(conversations=40, rated=10, systems=3, ratings_per_reply=20, ratings_per_rater=10)


@pytest.mark.parametrize("setting", [dict(correlation=0.9), dict(correlation=0.3, bias=1.0, effect=0.5)],
                         ids=["rho0.9-null", "rho0.3-biased-planted"])
def test_quickstart_shaped_coverage_is_nominal(setting: dict[str, float]) -> None:
    r = calibrate_ppi(PPIDesign(**_QUICKSTART, **setting), studies=200, seed=11)
    # 200 studies x 3 correlated targets: a band a little wider than the acceptance band
    assert 0.92 <= r.coverage_means <= 0.98, r
    assert 0.92 <= r.coverage_differences <= 0.98, r
    if setting["correlation"] == 0.9:
        assert r.width_ratio_means > 1.15


@pytest.mark.slow
def test_paper_shaped_coverage_is_nominal_with_a_biased_predictor() -> None:
    # 200 studies of 17 systems, 200 of 1,000 conversations rated: 45-85 s on the 2-core machine;
    # every other setting is in benchmarks/calibration.py --ppi
    r = calibrate_ppi(PPIDesign(correlation=0.6, bias=1.0, effect=0.5), studies=200, seed=12)
    assert 0.93 <= r.coverage_means <= 0.97, r
    assert 0.93 <= r.coverage_differences <= 0.97, r


def _synthetic_with_unrated(tmp_path: Any) -> tuple[Any, Any]:
    """synthetic_ratings (two models x two conditions, the empathy factors) and scores that cover 60
    more conversations than were rated."""
    from tidekit.analysis import synthetic_ratings

    df = synthetic_ratings(conversations=30, raters=45, ratings_per_rater=12, conversation_sd=0.5,
                           assignment="random", seed=3)
    rng = np.random.default_rng(3)
    rated = df.dropna(subset=["conversation_id"]).groupby(["conversation_id", "system"],
                                                          as_index=False)["empathy"].mean()
    systems = sorted(rated["system"].unique())
    unrated = pd.DataFrame([(f"u{c:03d}", s) for c in range(60) for s in systems], columns=["conversation_id", "system"])
    unrated["empathy"] = 4.5 + rng.normal(0, 0.8, len(unrated))
    scores = pd.concat([rated, unrated], ignore_index=True)
    scores["judge_overall"] = scores["empathy"] + rng.normal(0, 0.6, len(scores))
    ratings_path, scores_path = tmp_path / "ratings.parquet", tmp_path / "scores.parquet"
    df.to_parquet(ratings_path)
    scores.drop(columns="empathy").to_parquet(scores_path)
    return ratings_path, scores_path


def test_cli_reports_factors_conditions_and_the_design(tmp_path: Any, run_cli: Any) -> None:
    ratings, scores = _synthetic_with_unrated(tmp_path)
    out = tmp_path / "an"
    r = run_cli("analyze", "--ratings", ratings, "--scores", scores, "--out", out, "--by", "age_group", "--power",
                "ordinal=none", "bootstrap=0", "power.simulations=10", "ppi.target_width=0.4")
    assert r.code == 0, r.err
    assert "Prediction-powered means" in r.out and "design: a system mean to a 0.4-point CI" in r.out
    ppi = json.loads((out / "analysis.json").read_text())["ppi"]
    ratings_seen = {e["rating"] for e in ppi["estimates"]}
    from tidekit.scenarios import EMPATHY_FACTOR_IDS

    assert ratings_seen == {"empathy", *EMPATHY_FACTOR_IDS}  # the overall rating and each factor
    assert {e["target"] for e in ppi["estimates"] if e["kind"] == "condition"} == {"fine_tuned", "zero_shot"}
    assert ppi["rated_conversations"] == 30 and ppi["unrated_conversations"] == 60
    bad = run_cli("analyze", "--ratings", ratings, "--scores", scores, "--out", out, "ppi.predictor=bertscore_f1")
    assert bad.code != 0 and "ppi.predictor" in bad.err and "judge_overall" in bad.err and "Traceback" not in bad.err
