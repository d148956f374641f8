"""The analysis steps: each runs on explicit inputs, and worker processes give the serial result."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidekit.analysis import (
    AnalysisConfig,
    PowerConfig,
    analyze,
    prepare_ratings,
    synthetic_ratings,
)
from tidekit.analysis._steps import StepInputs, compare_step, metric_step, plan_steps, run_steps


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_ratings(raters=30, conversations=8, ratings_per_rater=8, age_style=1.0, seed=5)


def _scores(ratings: pd.DataFrame) -> pd.DataFrame:
    scores = ratings.groupby(["conversation_id", "system"], as_index=False)["empathy"].mean()
    noise = np.random.default_rng(0).normal(0, 0.05, (2, len(scores)))
    scores["cosine"] = scores["empathy"] / 7 + noise[0]
    scores["rouge_l"] = scores["empathy"] / 9 + noise[1]
    scores = scores.drop(columns="empathy")
    scores.attrs["metric_columns"] = ["cosine"]  # what a scoring run names; workers must see it too
    return scores


def _comparable(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = result.model_dump(mode="json", exclude={"timings"})
    data["config"].pop("workers")
    data["power"].pop("wall_s")
    return data


def test_worker_processes_give_the_serial_result(ratings: pd.DataFrame) -> None:
    base = dict(by=["age_group", "gender"], interactions_with=["condition"], bootstrap=20, ordinal="none",
                power=PowerConfig(simulations=10, raters=20, items=10, ratings_per_rater=5))
    serial = analyze(AnalysisConfig(**base, workers=1), ratings=ratings, scores=_scores(ratings))
    parallel = analyze(AnalysisConfig(**base, workers=2), ratings=ratings, scores=_scores(ratings))
    assert _comparable(parallel) == _comparable(serial)
    assert list(parallel.timings) == list(serial.timings)
    assert {t.term for t in parallel.tests if t.analysis == "metric_human"} == {"cosine"}
    assert any(t.analysis == "demographic" for t in parallel.tests) and parallel.power is not None


def test_steps_are_planned_in_report_order_and_pickle() -> None:
    steps = plan_steps(["age_group"], scores=True, power=False)
    assert [s.name for s in steps] == ["means", "compare system", "compare condition", "condition by scenario",
                                       "demographic age_group", "agreement", "metric-human"]
    assert [s.name for s in pickle.loads(pickle.dumps(steps))] == [s.name for s in steps]
    assert "power" in [s.name for s in plan_steps([], scores=False, power=True)]


def test_a_step_reads_only_its_inputs(ratings: pd.DataFrame) -> None:
    config = AnalysisConfig(by=[], bootstrap=0, ordinal="none")
    prep = prepare_ratings(ratings.drop(columns="condition"), config)
    inputs = StepInputs(df=prep.df, raters=prep.raters, config=config, within=[], extra_ratings=[])
    assert compare_step("condition", inputs).skipped == ["condition comparison skipped: no condition column"]
    [(step, part)] = run_steps(plan_steps([], scores=False, power=False)[1:2], inputs)
    assert step.name == "compare system" and part.tests and part.wall_s > 0
    with pytest.raises(ValueError, match="needs scores"):
        metric_step(inputs)
