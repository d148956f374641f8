"""Acceptance: planted effects are found, null effects are not, the false-positive rate is near
alpha, bad input gives a clear error or a stated exclusion, and the CLI works end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidekit.analysis import (
    AnalysisConfig,
    PowerConfig,
    analyze,
    power_by_simulation,
    synthetic_ratings,
)
from tidekit.errors import DataError


@pytest.fixture(scope="module")
def planted() -> Any:
    df = synthetic_ratings(raters=90, conversations=30, ratings_per_rater=16, age_style=1.0, gender_main=0.0,
                           seed=11)
    return analyze(AnalysisConfig(by=["age_group", "gender"], interactions_with=["condition"],
                                  bootstrap=200, ordinal="none"), ratings=df)


def test_planted_age_by_style_interaction_is_found(planted: Any) -> None:
    rater = planted.find(family="demographic-interaction/rater-contrast", term="age_group x condition "
                         "(fine_tuned - zero_shot)")[0]
    assert rater.level == "rater" and rater.role == "sensitivity" and not rater.finding
    assert rater.p_adjusted < 0.01
    contrasts = rater.extra["group_contrasts"]  # older raters gain more from validate-first replies
    order = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]  # the rating app's age groups
    assert set(contrasts) == set(order)
    from scipy import stats
    assert stats.kendalltau([order.index(g) for g in contrasts], list(contrasts.values())).statistic > 0.6
    assert contrasts["65+"] > contrasts["18-24"] + 0.5
    anova = planted.find(family="demographic-interaction/rater-anova", term="age_group x condition")[0]
    assert anova.p_adjusted < 0.01 and anova.finding and anova.role == "primary"  # the default primary test
    lmm = planted.find(family="demographic-interaction/lmm", term="age_group x condition")[0]
    assert lmm.p_adjusted < 0.01 and "(1|rater:condition)" in (lmm.model or "")


def test_no_gender_effect_is_found(planted: Any) -> None:
    gender = [t for t in planted.tests if t.finding and t.term.startswith("gender") and t.p is not None]
    assert gender, "gender was tested"
    assert all(t.p_adjusted > 0.05 for t in gender), [(t.family, t.term, t.p_adjusted) for t in gender]
    naive = [t for t in planted.tests if t.role == "descriptive"]
    assert naive and all(t.label and "not a finding" in t.label and not t.finding for t in naive)


def test_every_finding_has_an_effect_size_with_a_ci_and_a_scale(planted: Any) -> None:
    findings = [t for t in planted.tests if t.finding and t.analysis != "metric_human"]
    assert {t.analysis for t in findings} >= {"system", "condition", "demographic"}
    for t in findings:
        assert t.estimate is not None and t.ci_low is not None and t.ci_high is not None, (t.family, t.term)
        assert t.ci_low <= t.estimate <= t.ci_high and t.estimate_kind, (t.family, t.term)
    assert {t.scale for t in planted.tests} >= {"interval", "rank", "nominal"}
    assert all(t.scale is not None for t in planted.tests)
    # one question, one primary test: the others of the same question are never findings
    for analysis in ("system", "condition"):
        roles = {t.family: t.role for t in planted.tests if t.analysis == analysis}
        assert roles[f"{analysis}/lmm-omnibus"] == "primary"
        assert roles[f"{analysis}/wilcoxon-conversation"] == "sensitivity"


def test_false_positive_rate_is_near_alpha_and_pooling_is_not() -> None:
    null = PowerConfig(raters=40, items=60, ratings_per_rater=20, groups=2, effect=0.0, kind="main",
                       rater_sd=0.8, simulations=200)
    fpr = power_by_simulation(null, alpha=0.05, seed=3)
    # 200 simulations: SE of a 5% rate is 1.5 points; [0.015, 0.095] is about 2.7 SE each side.
    assert 0.015 <= fpr.power <= 0.095, fpr
    naive = power_by_simulation(null.model_copy(update={"simulations": 100}), alpha=0.05, seed=3,
                                rating_level=True)
    assert naive.power > 0.3, naive  # the statistical trap: pooled ratings reject the true null often
    inter = power_by_simulation(null.model_copy(update={"kind": "interaction"}), alpha=0.05, seed=4)
    assert 0.015 <= inter.power <= 0.095, inter


def test_power_grows_with_effect() -> None:
    cfg = PowerConfig(raters=60, items=80, ratings_per_rater=20, effect=0.8, simulations=60)
    assert power_by_simulation(cfg, seed=1).power > 0.5


def _base() -> pd.DataFrame:
    return synthetic_ratings(raters=16, conversations=8, ratings_per_rater=8, seed=2)


def test_missing_columns_are_named() -> None:
    with pytest.raises(DataError) as err:
        analyze(AnalysisConfig(by=["age_group", "height"]), ratings=_base().drop(columns=["rater_id"]))
    msg = str(err.value)
    assert "rater_id" in msg and "'height'" in msg and "--rater-col" in msg


def test_out_of_scale_errors_or_is_excluded() -> None:
    df = _base()
    df["empathy"] = df["empathy"].astype(object)
    df.loc[3, "empathy"] = 9
    df.loc[4, "empathy"] = "n/a"
    with pytest.raises(DataError, match="outside the scale 1-7"):
        analyze(AnalysisConfig(ordinal="none", bootstrap=0), ratings=df)
    res = analyze(AnalysisConfig(out_of_scale="exclude", ordinal="none", bootstrap=0), ratings=df)
    ex = [e for e in res.exclusions if "outside" in e.reason]
    assert ex and ex[0].rows == 2


def test_raters_without_demographics_and_one_level_factors_are_stated() -> None:
    df = _base()
    df["gender"] = "woman"  # one level
    df.loc[df["rater_id"] == "r0001", "age_group"] = "prefer_not_to_say"
    df["model"] = "only-model"
    res = analyze(AnalysisConfig(by=["age_group", "gender"], ordinal="none", bootstrap=0,
                                 interactions_with=["condition"]), ratings=df)
    assert any("gender" in s and "one level" in s for s in res.skipped)
    age = [e for e in res.exclusions if "age_group" in e.reason]
    unsaid = set(df.loc[df["age_group"] == "prefer_not_to_say", "rater_id"])  # r0001 and any simulated ones
    assert "r0001" in unsaid and age and age[0].scope == "tests of age_group"
    assert age[0].raters == len(unsaid) and set(age[0].detail) == unsaid
    res2 = analyze(AnalysisConfig(by=[], ordinal="none", bootstrap=0), ratings=df.assign(system="s"))
    assert any("system comparison skipped: one level" in s for s in res2.skipped)


def test_inconsistent_rater_attributes_are_an_error() -> None:
    df = _base()
    df.loc[df.index[:2], "age_group"] = ["18-24", "65+"]
    df.loc[df.index[:2], "rater_id"] = "r0000"
    with pytest.raises(DataError, match="constant per rater"):
        analyze(AnalysisConfig(by=["age_group"]), ratings=df)


def test_attention_rule_is_applied_and_reported() -> None:
    df = synthetic_ratings(raters=20, conversations=8, ratings_per_rater=8, attention_fail_rate=0.3, seed=5)
    failed = df[df["is_attention_check"] & (df["attention_passed"] == False)]["rater_id"].unique()  # noqa: E712
    res = analyze(AnalysisConfig(ordinal="none", bootstrap=0, by=[]), ratings=df)
    rule = [e for e in res.exclusions if "attention" in e.reason and e.raters]
    assert rule[0].raters == len(failed) > 0
    assert res.summary.raters == 20 - len(failed)


def test_renamed_columns_from_another_tool(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    df = _base().rename(columns={"rater_id": "worker", "item_id": "reply", "empathy": "score", "age_group": "age"})
    df = df[~df["is_attention_check"]].drop(columns=["is_attention_check", "attention_passed"])
    path = tmp_path / "other.parquet"
    df.to_parquet(path)
    scores = df.groupby(["conversation_id", "system"], as_index=False)["score"].mean()
    scores["cosine"] = scores["score"] / 7 + np.random.default_rng(0).normal(0, 0.05, len(scores))
    scores.drop(columns="score").to_parquet(tmp_path / "scores.parquet")
    out = tmp_path / "an"
    r = run_cli("analyze", "--ratings", path, "--out", out, "--rater-col", "worker", "--item-col", "reply",
                "--rating-col", "score", "--by", "age", "--scores", tmp_path / "scores.parquet",
                "ordinal=none", "bootstrap=50", "interactions_with=[condition]")
    assert r.code == 0, r.err
    data = json.loads((out / "analysis.json").read_text())
    assert data["summary"]["simulated"] is True and data["rating"] == "score"
    assert any(t["analysis"] == "metric_human" and t["term"] == "cosine" for t in data["tests"])
    assert (out / "manifest.json").is_file() and (out / "tables" / "tests.csv").is_file()
    assert all(t["correction"] for t in data["tests"] if t["p"] is not None)
    bad = run_cli("analyze", "--ratings", path, "--out", out)
    assert bad.code != 0 and "rater_id" in bad.err and "Traceback" not in bad.err


def test_sqlite_url(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'r.db'}"
    _base().drop(columns=["submitted_at"]).to_sql("ratings", sa.create_engine(url), index=False)
    res = analyze(AnalysisConfig(ordinal="none", bootstrap=0, by=[]), ratings=url)
    assert res.summary.ratings > 0
    with pytest.raises(DataError, match="tidekit rate export"):
        analyze(AnalysisConfig(table="nope"), ratings=url)


@pytest.mark.slow
def test_ordinal_model_runs_with_clustered_errors() -> None:
    res = analyze(AnalysisConfig(by=[], bootstrap=0), ratings=_base())
    ords = [t for t in res.tests if t.family.endswith("/ordinal")]
    assert ords and all(t.extra["se_clustered"] > 0 for t in ords)


def test_metric_columns_without_the_files_list_skip_facets_and_counts() -> None:
    import pandas as pd

    from tidekit.analysis._metric_human import metric_columns

    frame = pd.DataFrame({"conversation_id": ["a"], "system": ["s"], "age": [41], "judge_n": [2],
                          "cosine": [0.8], "safety_safe": [True], "judge_overall": [3.5]})
    assert metric_columns(frame) == ["cosine", "judge_overall"]
    frame.attrs["metric_columns"] = ["judge_overall", "gone"]  # what the scoring run named
    assert metric_columns(frame) == ["judge_overall"]
    assert metric_columns(frame, ["cosine", "age"]) == ["cosine", "age"]
