"""``analyze``: read ratings (and scores), run every analysis, correct within families, write.

Output folder: ``analysis.json`` (an :class:`AnalysisResult`), ``tables/*.csv`` (tests,
means, agreement, exclusions) and ``manifest.json``. Rerunning with the same inputs and
config rewrites the same files (seeded bootstraps), so reruns are idempotent.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidekit._io import atomic_path, write_text
from tidekit._manifest import RunRecorder, StepTiming
from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._effects import adjust
from tidekit.analysis._results import ANALYSIS_FILE, AnalysisResult, TestResult
from tidekit.analysis._steps import StepInputs, StepResult, plan_steps, run_steps, worker_count
from tidekit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from tidekit.analysis._ratings import PreparedRatings

__all__ = ["NOTES", "analyze", "apply_corrections", "write_tables"]

NOTES = [
    "One question, one primary test: only tests with role=primary are findings (finding=true); the other tests "
    "of the same question are sensitivity analyses shown beside them, and rating-level or rater-paired tests "
    "are descriptive. System and condition comparisons: an LMM with crossed random intercepts for rater, "
    "conversation and reply (plus rater-by-system where the design identifies it), Satterthwaite df; pairwise "
    "contrasts are Holm-corrected and gated by the omnibus F.",
    "Each test's 'scale' field says how it treats the 1-7 scale: interval (LMMs, ANOVAs, mean differences), "
    "rank (Wilcoxon, Mann-Whitney, Kruskal-Wallis, Kendall), ordinal (proportional odds) or nominal.",
    "Rater attributes (age, gender, education, ...) are tested at the rater level (one mean or contrast per "
    "rater) and with mixed models that have random intercepts for rater and item; these are the findings. "
    "Rating-level tests, where shown, are labelled and marked finding=false: they treat correlated ratings "
    "by one rater as independent and overstate the evidence.",
    "Mixed models: REML, crossed random intercepts, Satterthwaite degrees of freedom (as lme4 + lmerTest). "
    "Interaction models add a rater-by-factor intercept when it is identifiable, so raters' own preferences "
    "are not taken for group differences.",
    "Ordinal model: proportional odds (statsmodels OrderedModel) with two-way rater- and item-clustered "
    "standard errors, a population-averaged alternative to a CLMM (which has no maintained Python "
    "implementation); docs/analysis.md gives the R ordinal::clmm call.",
    "p_adjusted is corrected within each family (the 'family' field); unadjusted p-values are kept.",
]


def apply_corrections(tests: list[TestResult], method: str) -> None:
    """Fill ``p_adjusted`` and ``correction`` within each family, in place.

    A test whose ``extra["gate"]`` names another family (pairwise contrasts gated by their
    omnibus F) gets ``max(own adjusted p, gate's adjusted p)``: the closed-testing form, so a
    contrast is significant only when the omnibus is, and the question's family-wise error
    stays at alpha.
    """
    families: dict[str, list[TestResult]] = defaultdict(list)
    for t in tests:
        families[t.family].append(t)
    name = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}[method]
    for family, members in families.items():
        ps = [t.p for t in members]
        m = sum(p is not None for p in ps)
        for t, padj in zip(members, adjust(ps, method), strict=True):
            t.p_adjusted = padj
            t.correction = (f"{name} over {m} tests in family '{family}'" if m > 1
                            else "none (one test in its family)") if padj is not None else None
    for t in tests:
        gate = t.extra.get("gate")
        gates = [g.p_adjusted for g in families.get(gate, []) if g.p_adjusted is not None] if gate else []
        if t.p_adjusted is not None and gates:
            t.p_adjusted = max(t.p_adjusted, max(gates))
            t.correction = f"{t.correction}; gated by '{gate}' (closed testing)"


def _load_frame(ratings: str | Path | pd.DataFrame, table: str) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    from tidekit.analysis._ratings import load_ratings

    if isinstance(ratings, pd.DataFrame):
        return ratings, "<DataFrame>"
    return load_ratings(ratings, table=table), str(ratings)


def analyze(config: AnalysisConfig, *, out: str | Path | None = None,
            ratings: str | Path | pd.DataFrame | None = None, scores: str | Path | pd.DataFrame | None = None,
            progress: bool = False) -> AnalysisResult:
    """The analysis stage: analyse a long-format ratings table; write ``analysis.json`` and
    tables to ``out`` if given. Python twin of ``tidekit analyze``.

    The ratings are ``config.ratings`` (a CSV/Parquet path, a folder holding ratings.csv/parquet,
    or a SQLAlchemy URL with a ``config.table`` of long-format ratings) unless the ``ratings``
    keyword gives them (also a DataFrame); likewise the scores (a scores folder,
    ``scores.parquet`` or a DataFrame, joined on (conversation_id, system)).
    """
    import pandas as pd

    from tidekit.analysis._metric_human import load_scores
    from tidekit.analysis._ratings import prepare_ratings

    ratings = ratings if ratings is not None else config.ratings
    scores = scores if scores is not None else config.scores
    table = config.table
    if ratings is None:
        raise ConfigError("analyze: no ratings given; set 'ratings' (a file, folder or database URL) or pass "
                          "--ratings")
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            timings[name] = round(time.perf_counter() - t0, 4)

    raw, source = timed("load", lambda: _load_frame(ratings, table))
    prep = timed("prepare", lambda: prepare_ratings(raw, config))
    result = _start_result(prep, config)
    inputs = {"ratings": source}
    frame = None
    if scores is not None:
        frame = scores if isinstance(scores, pd.DataFrame) else timed("load scores", lambda: load_scores(scores))
        inputs["scores"] = "<DataFrame>" if isinstance(scores, pd.DataFrame) else str(scores)
    else:
        result.skipped.append("metric-human correlation skipped: no --scores given")
    steps = plan_steps(prep.attributes, scores=frame is not None, power=config.power is not None,
                       ppi=config.ppi is not None)
    present = [f for f in ("system", "condition", "scenario") if f in prep.df and prep.df[f].notna().any()]
    step_inputs = StepInputs(df=prep.df, raters=prep.raters, config=config,
                             within=[f for f in config.interactions_with if f in present],
                             extra_ratings=prep.extra_ratings, scores=frame)
    for step, part in run_steps(steps, step_inputs, worker_count(config, len(prep.df)), progress):
        timings[step.name] = part.wall_s
        _add_step_result(result, part)
    apply_corrections(result.tests, config.correction)
    result.timings = timings
    result.inputs = inputs
    if out is not None:
        write_analysis(result, out, config)
    return result


def _start_result(prep: PreparedRatings, config: AnalysisConfig) -> AnalysisResult:
    """The result before any test: data summary, exclusions, notes and what is skipped for lack of data."""
    df = prep.df
    result = AnalysisResult(config=config.model_dump(mode="json"), inputs={}, rating=config.columns.rating,
                            scale=(config.scale_min, config.scale_max), summary=prep.summary,
                            exclusions=prep.exclusions, skipped=list(prep.skipped), notes=list(NOTES),
                            primary=_primary_names(config, prep.attributes),
                            integer_ratings=bool((df["rating"] == df["rating"].round()).all()))
    if not result.integer_ratings:
        result.notes.append("Some ratings are not whole scale points: every test analyses them as they are "
                            "(agreement and the ordinal model use the distinct values as ordered categories); "
                            "nothing is rounded.")
    if result.summary.simulated:
        result.notes.insert(0, f"SIMULATED RATINGS: {result.summary.simulated_fraction:.0%} of the ratings are "
                               "simulated, not collected from people.")
    if not prep.attributes:
        result.skipped.append("demographic effects skipped: no rater attribute columns (name them with --by)")
    return result


def _add_step_result(result: AnalysisResult, part: StepResult) -> None:
    """Append one step's tests, means, agreement and skipped reasons (in step order, so reruns match)."""
    result.tests.extend(part.tests)
    result.means.extend(part.means)
    result.agreement.extend(part.agreement)
    result.skipped.extend(part.skipped)
    if part.power is not None:
        result.power = part.power
    if part.ppi is not None:
        result.ppi = part.ppi


def _primary_names(config: AnalysisConfig, attributes: list[str]) -> dict[str, str]:
    p = config.primary
    out: dict[str, str] = {"system": p.system, "condition": p.condition,
                           "condition_by_scenario": p.condition_by_scenario}
    out.update({f"demographic:{a}": p.main_test(a) for a in attributes})
    out["demographic_interaction"] = p.demographic_interaction
    return out


def write_tables(result: AnalysisResult, folder: str | Path) -> list[Path]:
    """Write tests, means, agreement, exclusions (and the prediction-powered estimates, when there
    are any: ppi.csv) as CSV files under ``folder``."""
    import pandas as pd

    folder = Path(folder)
    written = []
    frames = {
        "tests": pd.DataFrame([{**t.model_dump(exclude={"extra", "effect_sizes", "flags"}),
                                "flags": "; ".join(t.flags),
                                **{f"es_{k}": v for k, v in t.effect_sizes.items()}} for t in result.tests]),
        "means": pd.DataFrame([{**m.model_dump(exclude={"flags"}), "flags": "; ".join(m.flags)} for m in result.means]),
        "agreement": pd.DataFrame([a.model_dump() for a in result.agreement]),
        "exclusions": pd.DataFrame([{**e.model_dump(exclude={"detail"}), "detail": "; ".join(e.detail)}
                                    for e in result.exclusions]),
    }
    if result.ppi is not None:
        frames["ppi"] = pd.DataFrame([e.model_dump() for e in result.ppi.estimates])
    for name, frame in frames.items():
        path = folder / f"{name}.csv"
        with atomic_path(path, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False)
        written.append(path)
    return written


def write_analysis(result: AnalysisResult, out: str | Path, config: AnalysisConfig) -> None:
    """Write ``analysis.json``, the tables and the manifest to ``out``."""
    out = Path(out)
    with RunRecorder(out, command="analyze", config=config, seed=config.seed, inputs=result.inputs) as run:
        with run.step("write"):
            write_text(out / ANALYSIS_FILE, result.model_dump_json(indent=2) + "\n")
            write_tables(result, out / "tables")
        run.manifest.steps.extend(StepTiming(name=name, wall_s=secs) for name, secs in result.timings.items())
        run.counts.update(ratings=result.summary.ratings, raters=result.summary.raters, items=result.summary.items,
                          tests=len(result.tests), findings=sum(t.finding for t in result.tests))
        run.extra.update(simulated=result.summary.simulated, exclusions=[e.reason for e in result.exclusions],
                         skipped=result.skipped)

