"""Calibration by simulation: do the system and condition findings keep their error rate?

A simulated study has the shape of a real one (conversations each answered by every system,
raters each rating a random subset of the replies, rater leniency, conversation difficulty,
reply quality and rating noise on the 1-7 scale; :mod:`tidekit.analysis._simulate`, which
scores with tidekit's one rater model, :mod:`tidekit.analysis._rater_model`). Each study
is analysed exactly as ``tidekit analyze`` analyses system and condition (same tests, same
corrections, same gating), and a study "flags a difference" when any test marked ``finding``
for system or condition has an adjusted p below alpha. Over many null studies (no true
difference) the share that flag one is the family-wise false-positive rate, which should be
near alpha; with a planted difference it is the power. The same run also records how often
each other test (sensitivity and descriptive ones) rejects, so the reader sees why the primary
test is primary.

Used by ``tests/analysis/test_calibration.py`` (few studies, a wide band) and
``benchmarks/calibration.py`` (200+ studies per setting, figures in docs/benchmarks.md).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from tidekit._config import StrictModel
from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._effects import wilson
from tidekit.analysis._results import TestResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CalibrationResult", "StudyDesign", "calibrate", "rate_summary", "simulate_design"]


class StudyDesign(StrictModel):
    """A simulated rating study comparing systems (the knobs of the calibration)."""

    conversations: int = Field(default=40, ge=3, description="Conversations, each answered once by every system.")
    systems: int = Field(default=2, ge=2, le=6, description="Systems (one model, this many conditions).")
    raters: int = Field(default=30, ge=2, description="Raters.")
    ratings_per_rater: int = Field(default=24, ge=2, description="Replies each rater rates (a random subset).")
    rater_sd: float = Field(default=0.8, ge=0, description="SD of rater leniency.")
    conversation_sd: float = Field(default=0.5, ge=0, description="SD of conversation difficulty (shared by "
                                                                  "every system's reply to it).")
    reply_sd: float = Field(default=0.3, ge=0, description="SD of a reply's own quality.")
    rater_system_sd: float = Field(default=0.0, ge=0, description="SD of raters' own preference for the last "
                                                                  "system.")
    residual_sd: float = Field(default=1.0, gt=0, description="SD of rating noise.")
    effect: float = Field(default=0.0, description="True difference of the last system over the first (points).")


_CONDITIONS = ("zero_shot", "fine_tuned", "reference", "c4", "c5", "c6")


def simulate_design(design: StudyDesign, seed: int) -> pd.DataFrame:
    """One simulated study as a long ratings table (the export's columns, ``simulated=True``)."""
    from tidekit.analysis._simulate import synthetic_ratings

    conditions = list(_CONDITIONS[:design.systems])
    return synthetic_ratings(
        raters=design.raters, conversations=design.conversations, ratings_per_rater=design.ratings_per_rater,
        models=["m"], conditions=conditions, model_effects=[0.0], finetune_gain=design.effect,
        rater_sd=design.rater_sd, item_sd=design.reply_sd, conversation_sd=design.conversation_sd,
        slope_sd=design.rater_system_sd, residual_sd=design.residual_sd, assignment="random",
        attention_checks=0, missing_attribute_rate=0.0, seed=seed)


class CalibrationResult(BaseModel):
    """How often the findings (and each other test) flagged a system/condition difference."""

    design: StudyDesign = Field(description="The simulated design.")
    studies: int = Field(description="Simulated studies analysed.")
    alpha: float = Field(description="Significance level.")
    flagged: int = Field(description="Studies where any system/condition finding had adjusted p < alpha.")
    rate: float = Field(description="flagged / studies: the family-wise false-positive rate (effect 0) or power.")
    ci_low: float = Field(description="Wilson 95% lower limit of the rate.")
    ci_high: float = Field(description="Wilson 95% upper limit of the rate.")
    by_test: dict[str, float] = Field(default_factory=dict,
                                      description="Share of studies in which each test (family, role) rejected.")
    failed: int = Field(default=0, description="Studies whose analysis skipped the primary test.")
    wall_s: float = Field(description="Seconds the simulation took.")


def _analyse(df: pd.DataFrame, config: AnalysisConfig) -> list[TestResult]:
    from tidekit.analysis._analyze import apply_corrections
    from tidekit.analysis._compare import compare_factor
    from tidekit.analysis._ratings import prepare_ratings

    prep = prepare_ratings(df, config)
    tests: list[TestResult] = []
    # With one model, condition partitions the replies exactly as system does: the same tests
    # on the same groups, so they are run once (the finding set is unchanged).
    same = prep.df.groupby("system")["condition"].nunique().max() == 1 and \
        prep.df.groupby("condition")["system"].nunique().max() == 1
    for factor in ("system",) if same else ("system", "condition"):
        found, _ = compare_factor(prep.df, factor, config)
        tests.extend(found)
    apply_corrections(tests, config.correction)
    return tests


def calibrate(design: StudyDesign, studies: int = 200, seed: int = 0, alpha: float = 0.05,
              config: AnalysisConfig | None = None) -> CalibrationResult:
    """Simulate ``studies`` studies of ``design`` and count those flagging a system difference."""
    config = (config or AnalysisConfig(by=[], bootstrap=0, rating_level_tests=False,
                                       rater_paired_descriptive=True)).model_copy(update={"alpha": alpha})
    t0 = time.perf_counter()
    flagged = failed = 0
    rejections: Counter[str] = Counter()
    for i in range(studies):
        tests = _analyse(simulate_design(design, seed * 100_003 + i), config)
        findings = [t for t in tests if t.finding]
        if not findings:
            failed += 1
        flagged += any(t.significant(alpha) for t in findings)
        hit = {f"{t.family} ({t.role})" for t in tests if t.significant(alpha)}
        rejections.update(hit)
        for t in tests:
            rejections.setdefault(f"{t.family} ({t.role})", 0)
    lo, hi = wilson(flagged, studies)
    return CalibrationResult(design=design, studies=studies, alpha=alpha, flagged=flagged, rate=flagged / studies,
                             ci_low=lo, ci_high=hi, by_test={k: v / studies for k, v in sorted(rejections.items())},
                             failed=failed, wall_s=round(time.perf_counter() - t0, 2))


def rate_summary(result: CalibrationResult) -> str:
    """One line: the rate with its interval, for logs and benchmark tables."""
    kind = "false-positive rate" if result.design.effect == 0 else "power"
    return (f"{kind} {result.rate:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}] over {result.studies} studies "
            f"(reply SD {result.design.reply_sd}, effect {result.design.effect}) in {result.wall_s:.1f} s")

