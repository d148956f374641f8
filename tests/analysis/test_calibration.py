"""System comparisons keep their error rate on simulated studies shaped like ours, and the
analysis stays honest at the edges (tiny pilots, half-point ratings, constant metrics).

The calibration here is the fast version of ``benchmarks/calibration.py`` (200 studies per
setting, figures in docs/benchmarks.md): the design of a typical study (40 conversations each
answered once by two systems, 30 raters each rating a random 24 of the 80 replies, rater SD 0.8,
conversation SD 0.5, residual SD 1, 1-7 scale), with the reply SD that made the old rater-paired
test reject a true null in about half of the studies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidekit.analysis import AnalysisConfig, agreement, analyze
from tidekit.analysis._calibration import StudyDesign, calibrate, simulate_design

FAST = AnalysisConfig(by=[], bootstrap=0, rating_level_tests=False, rater_paired_descriptive=True,
                      ordinal="none")


@pytest.mark.slow
def test_null_studies_rarely_flag_a_system_difference_and_a_planted_one_is_found() -> None:
    null = calibrate(StudyDesign(reply_sd=0.5), studies=60, seed=7, config=FAST)
    # the acceptance bar: fewer than 10% of 60 null studies flag a difference (nominal 5%)
    assert null.rate < 0.10, null
    assert null.failed == 0
    # the rater-paired test (kept only as a labelled descriptive test) is what used to be reported:
    # it treats the replies as fixed and rejects the true null far more often than 5%
    assert null.by_test["system/wilcoxon-rater (descriptive)"] > 0.2, null.by_test
    # the conversation-paired robustness check stays near alpha too
    assert null.by_test["system/wilcoxon-conversation (sensitivity)"] < 0.12, null.by_test
    planted = calibrate(StudyDesign(reply_sd=0.5, effect=0.8), studies=20, seed=8, config=FAST)
    assert planted.rate >= 0.6, planted


def test_simulated_design_has_the_requested_shape() -> None:
    df = simulate_design(StudyDesign(conversations=40, raters=30, ratings_per_rater=24), seed=1)
    assert len(df) == 30 * 24 and df["conversation_id"].nunique() <= 40
    per_rater = df.groupby("rater_id")["item_id"].nunique()
    assert (per_rater == 24).all()  # a random subset of distinct replies per rater
    assert df["system"].nunique() == 2 and df["empathy"].between(1, 7).all()
    assert df.groupby("conversation_id")["system"].nunique().max() == 2  # replies share conversations


def test_a_six_rater_pilot_from_rate_simulate_analyses_and_says_what_it_skipped(
        tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    from tidekit.data import GenerationRecord, load_dataset, sample_path, write_generations

    gens = [GenerationRecord(conversation_id=conv.id, system=f"smollm2-135m:{cond}", model="smollm2-135m",
                             condition=cond, output=f"That sounds so hard ({cond}). You are not alone in this.")
            for conv in load_dataset(sample_path()).conversations[:10] for cond in ("zero_shot", "fine_tuned")]
    write_generations(tmp_path / "gens", gens)
    example = Path(__file__).parents[2] / "src" / "tidekit" / "rating" / "study.example.yaml"
    db = tmp_path / "ratings.db"
    assert run_cli("rate", "create", example, "--dataset", sample_path(), "--generations", tmp_path / "gens",
                   "--db", db, "split=null", "items_per_rater=6", "ratings_per_item=2").code == 0
    assert run_cli("rate", "simulate", "--db", db, "--raters", "6", "--seed", "1").code == 0
    assert run_cli("rate", "export", "--db", db, "--out", tmp_path / "exp" / "ratings.csv").code == 0
    res = run_cli("analyze", "--ratings", tmp_path / "exp" / "ratings.csv", "--out", tmp_path / "an")
    assert res.code == 0, res.err
    assert "Traceback" not in res.err
    out = json.loads((tmp_path / "an" / "analysis.json").read_text())
    assert out["summary"]["raters"] == 6
    # every skipped test says why (a reason after the colon), and the rest of the analysis ran
    assert out["skipped"] and all(":" in s and len(s.split(":", 1)[1].strip()) > 10 for s in out["skipped"])
    assert any("too few raters" in s for s in out["skipped"])
    assert any(t["family"] == "system/lmm-omnibus" for t in out["tests"])
    assert out["agreement"]


def test_half_point_ratings_are_analysed_as_they_are() -> None:
    import krippendorff

    # two raters always exactly one point apart, at half points: rounding made them agree (alpha 1)
    rows = []
    for i in range(30):
        a = (2.5, 3.5, 4.5, 5.5)[i % 4]
        rows += [{"item": f"i{i}", "rater": "A", "r": a}, {"item": f"i{i}", "rater": "B", "r": a + 1}]
    df = pd.DataFrame(rows)
    wide = df.pivot(index="rater", columns="item", values="r").to_numpy(float)
    for metric in ("ordinal", "interval"):
        mine = agreement(df, "r", "r", (1, 7), metric, 200, 0)
        assert mine.alpha is not None and mine.alpha < 0.8, mine
        # the package on the raw values (reliability data, no value domain given) agrees
        ref = krippendorff.alpha(reliability_data=wide, level_of_measurement=metric)
        assert mine.alpha == pytest.approx(ref, abs=1e-9)
        assert mine.ci_low is not None and mine.ci_low <= mine.alpha + 0.05


def test_half_point_ratings_reach_every_test_unrounded() -> None:
    df = simulate_design(StudyDesign(conversations=12, raters=12, ratings_per_rater=10), seed=3)
    half = 0.5 * (np.arange(len(df)) % 2) * np.where(df["empathy"] > 1, -1, 1)  # half the ratings at x.5,
    df["empathy"] = df["empathy"].astype(float) + half  # inside the 1-7 scale whatever the seed draws
    res = analyze(AnalysisConfig(by=[], bootstrap=0, rating_level_tests=False), ratings=df)
    assert res.integer_ratings is False and any("not whole scale points" in n for n in res.notes)
    assert any(k.endswith(".5") for k in res.summary.rating_counts)
    assert [t for t in res.tests if t.scale == "ordinal"]  # the ordinal model ran on the half points


def test_trend_test_for_ordered_attributes_matches_scipy() -> None:
    from scipy import stats

    from tidekit.analysis._simulate import synthetic_ratings
    from tidekit.rating._demographics import AGE_GROUPS

    df = synthetic_ratings(raters=160, conversations=20, ratings_per_rater=10, age_main=1.2, seed=5,
                           missing_attribute_rate=0.0, attention_checks=0)
    res = analyze(AnalysisConfig(by=["age_group", "gender"], interactions_with=[], bootstrap=0,
                                 ordinal="none", primary={"attributes": {"age_group": "trend"}}), ratings=df)
    trend = res.find(family="demographic-main/trend:age_group")[0]
    assert trend.finding and trend.role == "primary" and trend.extra["order"] == list(AGE_GROUPS)
    assert res.find(family="demographic-main/rater-level", term="age_group")[0].role == "sensitivity"
    # oracle: scipy's Kendall tau-b of (level rank, rater mean) on the same rater means
    checks = df[~df["is_attention_check"]]
    means = checks.groupby("rater_id")["empathy"].mean()
    rank = checks.groupby("rater_id")["age_group"].first().map(AGE_GROUPS.index)
    ref = stats.kendalltau(rank.loc[means.index], means, variant="b")
    assert trend.statistic == pytest.approx(ref.statistic) and trend.p == pytest.approx(ref.pvalue)
    assert trend.estimate is not None and trend.estimate > 0 and trend.ci_low is not None
    assert trend.p_adjusted is not None and trend.p_adjusted < 0.05  # the planted age effect
    # gender has no order: no trend row, and asking for one is a skipped test that says how to fix it
    assert not res.find(family="demographic-main/trend:gender")
    res2 = analyze(AnalysisConfig(by=["gender"], interactions_with=[], bootstrap=0, ordinal="none",
                                  primary={"demographic": "trend"}), ratings=df)
    assert any("analysis.ordered.gender" in s for s in res2.skipped)


def test_metric_human_says_what_it_skipped() -> None:
    from tidekit.analysis._simulate import synthetic_ratings

    df = synthetic_ratings(raters=20, conversations=10, ratings_per_rater=8, seed=2)
    pairs = df.dropna(subset=["system"])[["conversation_id", "system"]].drop_duplicates()
    rng = np.random.default_rng(0)
    scores = pairs.assign(cosine=rng.random(len(pairs)), constant=0.5)
    res = analyze(AnalysisConfig(by=[], bootstrap=0, ordinal="none",
                                 metrics=["cosine", "constant", "absent"]), ratings=df, scores=scores)
    assert res.find(analysis="metric_human", term="cosine")
    assert not res.find(analysis="metric_human", term="constant")
    assert any("constant" in s and "metric is constant" in s for s in res.skipped), res.skipped
    assert any("absent" in s for s in res.skipped)
