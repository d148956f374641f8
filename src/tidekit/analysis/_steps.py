"""The analysis steps of ``analyze`` as typed functions, and the runner that spreads them over processes.

Each step takes one :class:`StepInputs` and returns a :class:`StepResult`. The inputs travel
with every call (pickled to a worker process when steps run in parallel), so no step reads
module state: a step can be run, tested or reordered on its own, and a worker needs nothing
but its arguments.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._results import AgreementResult, GroupMean, PowerResult, PPIResult, TestResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Step", "StepInputs", "StepResult", "plan_steps", "run_steps", "worker_count"]

# below this many ratings, starting worker processes costs more than it saves
_PARALLEL_FROM = 20_000


@dataclass(frozen=True)
class StepInputs:
    """What the steps read: the prepared ratings, the rater table, the config and the scores."""

    df: pd.DataFrame
    raters: pd.DataFrame
    config: AnalysisConfig
    within: list[str]  # factors that demographic interactions are tested with
    extra_ratings: list[str]  # further rating columns ('r:<col>') for agreement
    scores: pd.DataFrame | None = None


@dataclass
class StepResult:
    """The part of an :class:`AnalysisResult` one step produces, and how long it took."""

    tests: list[TestResult] = field(default_factory=list)
    means: list[GroupMean] = field(default_factory=list)
    agreement: list[AgreementResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    power: PowerResult | None = None
    ppi: PPIResult | None = None
    wall_s: float = 0.0


@dataclass(frozen=True)
class Step:
    """A named step; ``run`` is a module-level function (or a partial of one) so it pickles."""

    name: str
    run: Callable[[StepInputs], StepResult]

    def __call__(self, inputs: StepInputs) -> StepResult:
        """Run the step and record its wall time in the result."""
        t0 = time.perf_counter()
        result = self.run(inputs)
        result.wall_s = round(time.perf_counter() - t0, 4)
        return result


def means_step(inputs: StepInputs) -> StepResult:
    """Mean of rater means per level of every factor present."""
    from tidekit.analysis._compare import factor_means

    df = inputs.df
    return StepResult(means=[m for f in ("system", "condition", "model", "scenario")
                             if f in df and df[f].notna().any() for m in factor_means(df, f, inputs.config)])


def compare_step(factor: str, inputs: StepInputs) -> StepResult:
    """Tests between the levels of ``factor`` (system or condition); a design that cannot be fitted is skipped."""
    from tidekit.analysis._compare import compare_factor
    from tidekit.analysis._demographics import skip_on_failure

    if factor not in inputs.df:
        return StepResult(skipped=[f"{factor} comparison skipped: no {factor} column"])
    out = StepResult()
    with skip_on_failure(f"{factor} comparison", out.skipped):
        out.tests, out.skipped = compare_factor(inputs.df, factor, inputs.config)
    return out


def scenario_step(inputs: StepInputs) -> StepResult:
    """Condition effects within each scenario and the condition-by-scenario interaction."""
    from tidekit.analysis._compare import condition_by_scenario
    from tidekit.analysis._demographics import skip_on_failure

    out = StepResult()
    with skip_on_failure("condition-by-scenario LMM", out.skipped):
        out.tests, out.skipped = condition_by_scenario(inputs.df, inputs.config)
    return out


def demographic_step(attribute: str, inputs: StepInputs) -> StepResult:
    """Main effect of one rater attribute and its interactions with the ``within`` factors."""
    from tidekit.analysis._demographics import attribute_effects

    tests, means, skipped = attribute_effects(inputs.df, inputs.raters, attribute, inputs.within, inputs.config)
    return StepResult(tests=tests, means=means, skipped=skipped)


def agreement_step(inputs: StepInputs) -> StepResult:
    """Krippendorff's alpha (ordinal and interval) of the rating and of every further rating column."""
    from tidekit.analysis._agreement import agreement

    config = inputs.config
    columns = [("rating", config.columns.rating)] + [(c, c[2:]) for c in inputs.extra_ratings]
    return StepResult(agreement=[agreement(inputs.df, col, label, (config.scale_min, config.scale_max), metric,
                                           config.bootstrap, config.seed, 1 - config.alpha)
                                 for col, label in columns for metric in ("ordinal", "interval")])


def metric_step(inputs: StepInputs) -> StepResult:
    """Correlation of each automatic metric with the mean human rating."""
    from tidekit.analysis._metric_human import metric_human

    if inputs.scores is None:
        raise ValueError("the metric-human step needs scores; plan_steps adds it only when scores are given")
    tests, skipped = metric_human(inputs.df, inputs.scores, inputs.config.metrics, inputs.config.alpha)
    return StepResult(tests=tests, skipped=skipped)


def ppi_step(inputs: StepInputs) -> StepResult:
    """Prediction-powered estimates of system and condition means and paired differences."""
    from tidekit.analysis._ppi_analysis import ppi_analysis

    if inputs.scores is None:
        raise ValueError("the ppi step needs scores; plan_steps adds it only when scores are given")
    result, skipped = ppi_analysis(inputs.df, inputs.scores, inputs.config, extra_ratings=inputs.extra_ratings,
                                   design=inputs.config.power is not None)
    return StepResult(ppi=result, skipped=skipped)


def power_step(inputs: StepInputs) -> StepResult:
    """Power of the planned study (``config.power``) by simulation."""
    from tidekit.analysis._power import power_by_simulation

    config = inputs.config
    if config.power is None:
        raise ValueError("the power step needs config.power; plan_steps adds it only when power is set")
    return StepResult(power=power_by_simulation(config.power, config.alpha, config.seed))


def plan_steps(attributes: Sequence[str], *, scores: bool, power: bool, ppi: bool = False) -> list[Step]:
    """The steps of one analysis, in the order their results are reported."""
    steps = [Step("means", means_step)]
    steps += [Step(f"compare {f}", partial(compare_step, f)) for f in ("system", "condition")]
    steps.append(Step("condition by scenario", scenario_step))
    steps += [Step(f"demographic {a}", partial(demographic_step, a)) for a in attributes]
    steps.append(Step("agreement", agreement_step))
    if scores:
        steps.append(Step("metric-human", metric_step))
    if scores and ppi:
        steps.append(Step("prediction-powered", ppi_step))
    if power:
        steps.append(Step("power", power_step))
    return steps


def worker_count(config: AnalysisConfig, ratings: int) -> int:
    """``config.workers``, or by default two processes on large data where the machine has them."""
    if config.workers:
        return config.workers
    return 1 if ratings < _PARALLEL_FROM else min(2, os.cpu_count() or 1)


def run_steps(steps: Sequence[Step], inputs: StepInputs, workers: int = 1,
              progress: bool = False) -> list[tuple[Step, StepResult]]:
    """Run ``steps`` on ``inputs`` in order, or across forked worker processes; results keep the step order.

    Workers receive the step and the inputs as call arguments. Where the platform cannot fork
    (Windows), the steps run in this process: a spawned worker would re-import the whole
    statistics stack for each run, which costs more than the steps save on typical data.
    """
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(steps), desc="analyze", unit="step", leave=False)
    results: dict[int, StepResult] = {}
    try:
        if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            for i, step in enumerate(steps):
                if bar is not None:
                    bar.set_postfix_str(step.name)
                results[i] = step(inputs)
                if bar is not None:
                    bar.update()
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(step, inputs): i for i, step in enumerate(steps)}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()
    return [(step, results[i]) for i, step in enumerate(steps)]
