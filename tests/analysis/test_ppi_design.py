"""The sampling design behind the prediction-powered estimates: stratified estimates, the checks
against the scores, and the calibration that shows what the recorded design is for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tidekit.analysis import AnalysisConfig
from tidekit.analysis._calibration import PPIDesign, calibrate_ppi, simulate_ppi_study
from tidekit.analysis._ppi import ppi_mean, ppi_mean_stratified
from tidekit.analysis._ppi_analysis import ppi_analysis
from tidekit.analysis._ratings import prepare_ratings
from tidekit.errors import ConfigError

ppi_py = pytest.importorskip("ppi_py", reason="the oracle: pip install ppi-python (the dev extra has it)")

CONFIG = AnalysisConfig(by=[], ppi={"predictor": "predictor"})


def _strata_data(seed: int) -> tuple[np.ndarray, ...]:
    """Three strata of unequal size and level, an even rated sample in each."""
    rng = np.random.default_rng(seed)
    ys, fs, fus, ss, sus = [], [], [], [], []
    for h, (size, level) in enumerate([(60, 3.0), (240, 4.0), (700, 5.0)]):
        quality = rng.normal(level, 1.0, size)
        f = 0.5 * quality + rng.normal(0, 0.4, size)
        rated = rng.permutation(size)[:40]
        mask = np.zeros(size, bool)
        mask[rated] = True
        ys.append(quality[mask] + rng.normal(0, 0.5, 40))
        fs.append(f[mask])
        fus.append(f[~mask])
        ss += [f"h{h}"] * 40
        sus += [f"h{h}"] * (size - 40)
    return (np.concatenate(ys), np.concatenate(fs), np.concatenate(fus), np.array(ss, dtype=object),
            np.array(sus, dtype=object))


def test_one_stratum_is_the_simple_ppi_mean_and_so_ppi_py_at_its_lambda() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(4, 1, 120)
    f = 0.6 * y + rng.normal(0, 0.5, 120)
    fu = 0.6 * rng.normal(4, 1, 900) + rng.normal(0, 0.5, 900)
    one = ppi_mean_stratified(y, f, fu, np.array(["a"] * 120, dtype=object), np.array(["a"] * 900, dtype=object),
                              interval="z")
    plain = ppi_mean(y, f, fu, lam=one.lam, interval="z")
    for field in ("estimate", "se", "ci_low", "ci_high", "lam", "human", "human_se"):
        assert getattr(one, field) == pytest.approx(getattr(plain, field), abs=1e-12), field
    lo, hi = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.05, lam=one.lam)
    assert abs(one.ci_low - float(np.ravel(lo)[0])) < 1e-8 and abs(one.ci_high - float(np.ravel(hi)[0])) < 1e-8


@pytest.mark.parametrize("seed", [0, 1])
def test_stratified_estimate_is_the_weighted_sum_of_ppi_py_strata_at_the_common_lambda(seed: int) -> None:
    y, f, fu, s, su = _strata_data(seed)
    m = ppi_mean_stratified(y, f, fu, s, su, interval="z")
    est = var = 0.0
    for h in ("h0", "h1", "h2"):
        yh, fh, fuh = y[s == h], f[s == h], fu[su == h]
        w = (len(yh) + len(fuh)) / (len(y) + len(fu))
        point = float(np.ravel(ppi_py.ppi_mean_pointestimate(yh, fh, fuh, lam=m.lam))[0])
        lo, hi = (float(np.ravel(v)[0]) for v in ppi_py.ppi_mean_ci(yh, fh, fuh, alpha=0.05, lam=m.lam))
        est += w * point
        var += (w * (hi - lo) / (2 * 1.959963984540054)) ** 2
    assert m.estimate == pytest.approx(est, abs=1e-10)
    assert m.se == pytest.approx(np.sqrt(var), abs=1e-8)
    # the human-only estimate is the textbook stratified mean (Cochran), from pandas
    frame = pd.DataFrame({"y": y, "s": s})
    sizes = pd.Series(su).value_counts() + frame["s"].value_counts()
    weights = sizes / sizes.sum()
    g = frame.groupby("s")["y"]
    assert m.human == pytest.approx(float((weights * g.mean()).sum()), abs=1e-12)
    assert m.human_se == pytest.approx(float(np.sqrt((weights ** 2 * g.var(ddof=0) / g.count()).sum())), abs=1e-12)
    # the unweighted mean of the rated units is far off (strata are rated evenly, not in proportion)
    assert abs(y.mean() - m.human) > 0.3


def test_the_common_lambda_minimises_the_variance() -> None:
    y, f, fu, s, su = _strata_data(2)
    best = ppi_mean_stratified(y, f, fu, s, su, interval="z")

    def var_at(lam: float) -> float:
        total = 0.0
        for h in ("h0", "h1", "h2"):
            yh, fh, fuh = y[s == h], f[s == h], fu[su == h]
            w = (len(yh) + len(fuh)) / (len(y) + len(fu))
            total += w * w * (lam * lam * np.var(np.concatenate([fh, fuh]), ddof=1) / len(fuh)
                              + np.var(yh - lam * fh) / len(yh))
        return float(total)

    # lambda uses each stratum's pooled var(f), as ppi_py's tuned lambda does, so it is not the
    # exact minimiser of the estimated variance; the variance it gives is within 1% of that minimum
    lams = np.linspace(best.lam - 1, best.lam + 1, 401)
    assert var_at(best.lam) <= 1.01 * min(var_at(v) for v in lams)
    assert best.se ** 2 == pytest.approx(var_at(best.lam), rel=0.05)
    assert best.se < best.human_se


def test_a_stratum_with_one_rated_unit_or_unrated_units_alone_is_refused() -> None:
    y, f, fu, s, su = _strata_data(3)
    with pytest.raises(ValueError, match="2 in each"):
        ppi_mean_stratified(y[39:], f[39:], fu, s[39:], su)
    with pytest.raises(ValueError, match="no rated unit"):
        ppi_mean_stratified(y[40:], f[40:], fu, s[40:], su)


def _study(**design: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings, scores, _ = simulate_ppi_study(PPIDesign(conversations=300, rated=100, systems=3, ratings_per_reply=3,
                                                      ratings_per_rater=10, **design), seed=4)
    return ratings, scores


def test_the_recorded_design_is_read_stated_and_checked() -> None:
    ratings, scores = _study(strata=5)
    prep = prepare_ratings(ratings, CONFIG)
    result, _ = ppi_analysis(prep.df, scores, CONFIG)
    assert result is not None and result.sampling.startswith("a stratified random sample within scenario_id")
    assert not any("differ in the mean predictor" in f for f in result.flags)  # strata differ by design
    # scores of conversations outside the frame: an error naming what to do
    extra = scores[scores["scenario_id"] == "h00"].assign(conversation_id=lambda d: d["conversation_id"] + "x")
    with pytest.raises(ConfigError, match="more conversations of scenario_id 'h00'"):
        ppi_analysis(prep.df, pd.concat([scores, extra]), CONFIG)
    with pytest.raises(ConfigError, match="no 'scenario_id' column"):
        ppi_analysis(prep.df, scores.drop(columns="scenario_id"), CONFIG)
    mixed = ratings.copy()
    mixed.loc[mixed.index[:5], "sampling"] = "census"
    with pytest.raises(ConfigError, match="mix sampling designs"):
        ppi_analysis(prepare_ratings(mixed, CONFIG).df, scores, CONFIG)
    odd = ratings.assign(sampling="quota")
    with pytest.raises(ConfigError, match="cannot analyse"):
        ppi_analysis(prepare_ratings(odd, CONFIG).df, scores, CONFIG)


def test_a_simple_random_frame_narrower_than_the_scores_is_an_error_and_no_record_is_stated() -> None:
    ratings, scores = _study()
    prep = prepare_ratings(ratings, CONFIG)
    result, _ = ppi_analysis(prep.df, scores, CONFIG)
    assert result is not None and result.sampling.startswith("a simple random sample of 300")
    wider = pd.concat([scores, scores.assign(conversation_id=scores["conversation_id"] + "x")])
    with pytest.raises(ConfigError, match="sampled from 300"):
        ppi_analysis(prep.df, wider, CONFIG)
    bare = prepare_ratings(ratings.drop(columns=["sampling", "stratum", "inclusion_probability", "frame_size"]),
                           CONFIG)
    result, _ = ppi_analysis(bare.df, wider, CONFIG)
    assert result is not None and result.sampling.startswith("not recorded")
    assert any("record no sampling design" in f for f in result.flags)


def test_stratified_coverage_is_nominal_and_ignoring_the_design_is_not() -> None:
    # 300 studies of 3 systems, 100 of 300 conversations rated evenly over 5 strata of sizes
    # 20..100 whose quality falls with size: the recorded design covers, the same ratings taken
    # as a simple random sample do not (the human-only mean is biased toward the small strata)
    design = PPIDesign(conversations=300, rated=100, systems=3, ratings_per_reply=3, ratings_per_rater=10,
                       strata=5, correlation=0.6)
    recorded = calibrate_ppi(design, studies=300, seed=21)
    assert 0.925 <= recorded.coverage_means <= 0.975, recorded
    assert 0.925 <= recorded.coverage_differences <= 0.975, recorded
    assert 0.925 <= recorded.human_coverage_means <= 0.975, recorded
    ignored = calibrate_ppi(design, studies=100, seed=21,
                            config=AnalysisConfig(by=[], ppi={"predictor": "predictor", "sampling": "simple_random"}))
    assert ignored.human_coverage_means < 0.6 and ignored.coverage_means < 0.85, ignored
