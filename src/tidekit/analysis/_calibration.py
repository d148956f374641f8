"""Calibration by simulation: do the system and condition findings keep their error rate?

A simulated study has the shape of a real one (conversations each answered by every system,
raters each rating a random subset of the replies, rater leniency, conversation difficulty,
reply quality and rating noise on the 1-7 scale; :mod:`tidekit.analysis._simulate`, which
scores with tidekit's one rater model, :mod:`tidekit.rating._rater_model`). Each study
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

import numpy as np
from pydantic import BaseModel, Field

from tidekit._config import StrictModel
from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._effects import wilson
from tidekit.analysis._results import TestResult
from tidekit.rating import RaterBehaviour

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CalibrationResult", "PPICalibrationResult", "PPIDesign", "StudyDesign", "calibrate", "calibrate_ppi",
           "rate_summary", "simulate_design", "simulate_ppi_study"]


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



# -- prediction-powered estimates -----------------------------------------------------------------

class PPIDesign(StrictModel):
    """A simulated study with a rated subset of the scored conversations and a predictor on every reply."""

    conversations: int = Field(default=1000, ge=4, description="Scored conversations (every system answers each).")
    rated: int = Field(default=200, ge=2, description="Rated conversations: a simple random sample of them.")
    systems: int = Field(default=17, ge=2, description="Systems.")
    ratings_per_reply: int = Field(default=3, ge=1, description="Raters per rated reply.")
    ratings_per_rater: int = Field(default=20, ge=1, description="Replies each rater rates (random ones).")
    rater_sd: float = Field(default=0.8, ge=0, description="SD of rater leniency.")
    conversation_sd: float = Field(default=0.5, ge=0, description="SD of conversation difficulty.")
    reply_sd: float = Field(default=0.5, ge=0, description="SD of a reply's own quality.")
    residual_sd: float = Field(default=1.0, gt=0, description="SD of rating noise.")
    effect: float = Field(default=0.0, description="True quality of the last system over the first, rating "
                                                   "points (systems evenly spaced between).")
    correlation: float = Field(default=0.6, ge=0, le=1, description="Correlation of the predictor with the true "
                                                                    "reply quality, within a system.")
    bias: float = Field(default=0.0, description="System-dependent bias of the predictor: the last system's "
                                                 "predictor is shifted by this many predictor SDs, the "
                                                 "others evenly between, unrelated to their quality.")
    strata: int = Field(default=0, ge=0, description="0: the rated conversations are a simple random sample. "
                                                     "H >= 2: H strata of unequal size (proportional to 1..H), "
                                                     "the rated conversations spread evenly over them (as "
                                                     "'rating.study.strata' does), so small strata are "
                                                     "oversampled.")
    stratum_effect: float = Field(default=0.8, description="With strata: the quality offset of the smallest "
                                                           "stratum (the largest gets minus this, the others "
                                                           "evenly between), so ignoring the design biases the "
                                                           "means.")


def _scale_mean(mean: np.ndarray, sd: float, points: int = 7) -> np.ndarray:
    """E[clip(round(X), 1, points)] for X ~ N(mean, sd): 1 + sum_j P(X >= j + 0.5), exactly."""
    from scipy import stats

    steps = np.arange(1, points) + 0.5
    return 1 + stats.norm.sf((steps[None, :] - np.asarray(mean)[:, None]) / sd).sum(axis=1)


def simulate_ppi_study(design: PPIDesign, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """One study: (ratings in the export's columns, scores with a ``predictor`` column, each
    system's true mean rating). Quality of reply (c, s) = 4.2 + system + conversation + reply;
    a rating adds rater leniency and noise and is rounded to 1-7 by tidekit's rater model."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    d = design
    C, S, k = d.conversations, d.systems, d.ratings_per_reply
    steps = np.arange(S) / (S - 1)
    mu = 4.2 + d.effect * steps
    behaviour = RaterBehaviour(rater_sd=d.rater_sd, item_sd=d.reply_sd, noise_sd=d.residual_sd,
                               conversation_sd=d.conversation_sd, points=7)
    stratum, offsets, sizes = _strata(d, C)
    conv = rng.normal(0, d.conversation_sd, C) + offsets[stratum]
    quality = mu[None, :] + conv[:, None] + behaviour.item_effects(rng, (C, S))
    q_sd = float(np.hypot(d.conversation_sd, d.reply_sd)) or 1.0
    noise = rng.normal(0, 1, (C, S))
    z = d.correlation * (quality - mu[None, :]) / q_sd + np.sqrt(1 - d.correlation ** 2) * noise
    predictor = 0.5 + 0.1 * (z + (mu[None, :] - 4.2) / q_sd * d.correlation + d.bias * steps[None, :])
    rated, take = _draw(rng, stratum, sizes, d.rated)
    slots = np.repeat(np.arange(len(rated) * S), k)[rng.permutation(len(rated) * S * k)]
    raters = -(-len(slots) // d.ratings_per_rater)
    rater_of = np.arange(len(slots)) // d.ratings_per_rater
    lenient = behaviour.leniency(rng, raters)
    rc, rs = rated[slots // S], slots % S
    latent = behaviour.latent(rng, quality[rc, rs], rater=lenient[rater_of], item=0.0)
    conv_ids = np.array([f"c{c:05d}" for c in range(C)], dtype=object)
    sys_ids = np.array([f"s{s:02d}" for s in range(S)], dtype=object)
    ratings = pd.DataFrame({"rater_id": np.array([f"r{r:05d}" for r in range(raters)], dtype=object)[rater_of],
                            "item_id": conv_ids[rc] + "|" + sys_ids[rs], "conversation_id": conv_ids[rc],
                            "system": sys_ids[rs], "empathy": behaviour.to_scale(latent), "simulated": True,
                            # the design columns 'tidekit rate export' writes
                            "sampling": "stratified:scenario_id" if d.strata else "simple_random",
                            "stratum": np.array([f"h{h:02d}" for h in stratum[rc]], dtype=object),
                            "inclusion_probability": (take / sizes)[stratum[rc]], "frame_size": sizes[stratum[rc]]})
    scores = pd.DataFrame({"conversation_id": np.repeat(conv_ids, S), "system": np.tile(sys_ids, C),
                           "scenario_id": np.repeat([f"h{h:02d}" for h in stratum], S),
                           "predictor": predictor.ravel()})
    total_sd = float(np.sqrt(d.conversation_sd ** 2 + d.reply_sd ** 2 + d.rater_sd ** 2 + d.residual_sd ** 2))
    truth = sum(sizes[h] / C * _scale_mean(mu + offsets[h], total_sd) for h in range(len(sizes)))
    return ratings, scores, np.asarray(truth)


def _strata(d: PPIDesign, C: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stratum of each conversation, quality offset and size of each stratum): one stratum
    without ``d.strata``; else sizes proportional to 1..H, the smallest offset by +effect."""
    if d.strata < 2:
        return np.zeros(C, int), np.zeros(1), np.array([C])
    H = d.strata
    sizes = np.floor(C * np.arange(1, H + 1) / (H * (H + 1) / 2)).astype(int)
    sizes[-1] += C - sizes.sum()
    offsets = d.stratum_effect * (1 - 2 * np.arange(H) / (H - 1))
    return np.repeat(np.arange(H), sizes), offsets, sizes


def _draw(rng: np.random.Generator, stratum: np.ndarray, sizes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted rated conversations, rated count per stratum): a simple random sample, or within
    each stratum an even share of ``n`` (capped at the stratum's size)."""
    H = len(sizes)
    take = np.zeros(H, int)
    while take.sum() < n:  # an equal share, capped at each stratum's size, the rest to those with room
        room = np.flatnonzero(take < sizes)
        share = max((n - int(take.sum())) // len(room), 1)
        for h in room[: n - int(take.sum())] if share == 1 else room:
            take[h] = min(sizes[h], take[h] + share)
    chosen = [rng.choice(np.flatnonzero(stratum == h), size=int(take[h]), replace=False) for h in range(H)]
    return np.sort(np.concatenate(chosen)), take


class PPICalibrationResult(BaseModel):
    """Coverage and width of the prediction-powered intervals over simulated studies."""

    design: PPIDesign = Field(description="The simulated design.")
    studies: int = Field(description="Simulated studies analysed.")
    alpha: float = Field(description="1 - nominal coverage.")
    coverage_means: float = Field(description="Share of system-mean intervals (all systems, all studies) "
                                              "covering the true mean.")
    coverage_differences: float = Field(description="Share of paired-difference intervals covering the true "
                                                    "difference.")
    human_coverage_means: float = Field(description="The same for the human-only intervals.")
    human_coverage_differences: float = Field(description="The same for the human-only intervals.")
    width_ratio_means: float = Field(description="Mean over studies of the median human-only / PPI width, means.")
    width_ratio_differences: float = Field(description="The same for paired differences.")
    ess_ratio: float = Field(description="Mean effective-sample-size ratio of the system means.")
    correlation: float = Field(description="Mean correlation of predictor and human reply value (rated "
                                           "conversations, per system): lower than the planted correlation "
                                           "with true quality, because a reply's mean rating is noisy.")
    width_bound: float = Field(description="The asymptotic width ratio of a system mean at that correlation, "
                                           "1 / sqrt(1 - rho^2 (1 - n/N)), before the raters' mean leniency "
                                           "(which no predictor removes) is added.")
    lam: float = Field(description="Mean lambda of the system means.")
    rejected_first_last: float = Field(description="Share of studies where the last-minus-first difference had "
                                                   "p < alpha (false-positive rate at effect 0, else power).")
    human_rejected_first_last: float = Field(description="The same for the human-only test.")
    wall_s: float = Field(description="Seconds the simulation took.")


def calibrate_ppi(design: PPIDesign, studies: int = 200, seed: int = 0, alpha: float = 0.05,
                  config: AnalysisConfig | None = None) -> PPICalibrationResult:
    """Simulate ``studies`` studies of ``design`` and analyse each as ``tidekit analyze`` does."""
    from tidekit.analysis._ppi_analysis import ppi_analysis
    from tidekit.analysis._ratings import prepare_ratings

    config = (config or AnalysisConfig(by=[], ppi={"predictor": "predictor"})).model_copy(update={"alpha": alpha})
    t0 = time.perf_counter()
    cover: dict[str, list[float]] = {k: [] for k in ("m", "d", "hm", "hd")}
    widths_m, widths_d, ess, lams, rej, hrej, corrs = [], [], [], [], [], [], []
    last = f"s{design.systems - 1:02d} - s00"
    for i in range(studies):
        ratings, scores, truth = simulate_ppi_study(design, seed * 100_003 + i)
        prep = prepare_ratings(ratings, config)
        result, why = ppi_analysis(prep.df, scores, config)
        if result is None:
            raise RuntimeError(f"study {i}: {why}")
        true = {f"s{s:02d}": float(t) for s, t in enumerate(truth)}
        means = [e for e in result.estimates if e.kind == "system"]
        diffs = [e for e in result.estimates if e.kind == "difference"]
        for e in means:
            cover["m"].append(e.ci_low <= true[e.target] <= e.ci_high)
            cover["hm"].append(e.human_ci_low <= true[e.target] <= e.human_ci_high)
        for e in diffs:
            b, a = e.target.split(" - ")
            t = true[b] - true[a]
            cover["d"].append(e.ci_low <= t <= e.ci_high)
            cover["hd"].append(e.human_ci_low <= t <= e.human_ci_high)
            if e.target == last:
                rej.append((e.p or 1.0) < alpha)
                hrej.append((e.human_p or 1.0) < alpha)
        widths_m.append(float(np.median([e.width_ratio for e in means])))
        widths_d.append(float(np.median([e.width_ratio for e in diffs])))
        ess.append(float(np.mean([e.ess_ratio for e in means])))
        lams.append(float(np.mean([e.lam for e in means])))
        corrs.append(float(np.mean([e.correlation or 0.0 for e in means])))
    return PPICalibrationResult(
        design=design, studies=studies, alpha=alpha, coverage_means=float(np.mean(cover["m"])),
        coverage_differences=float(np.mean(cover["d"])), human_coverage_means=float(np.mean(cover["hm"])),
        human_coverage_differences=float(np.mean(cover["hd"])), width_ratio_means=float(np.mean(widths_m)),
        width_ratio_differences=float(np.mean(widths_d)), ess_ratio=float(np.mean(ess)), lam=float(np.mean(lams)),
        correlation=float(np.mean(corrs)),
        width_bound=float(1 / np.sqrt(1 - np.mean(corrs) ** 2 * (1 - design.rated / design.conversations))),
        rejected_first_last=float(np.mean(rej)), human_rejected_first_last=float(np.mean(hrej)),
        wall_s=round(time.perf_counter() - t0, 2))
