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

from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._effects import adjust
from tidekit.analysis._results import ANALYSIS_FILE, AnalysisResult, TestResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NOTES", "analyze", "apply_corrections", "write_tables"]

NOTES = [
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
    """Fill ``p_adjusted`` and ``correction`` within each family, in place."""
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


def _load_frame(ratings: str | Path | pd.DataFrame, table: str) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    from tidekit.analysis._ratings import load_ratings

    if isinstance(ratings, pd.DataFrame):
        return ratings, "<DataFrame>"
    return load_ratings(ratings, table=table), str(ratings)


def analyze(ratings: str | Path | pd.DataFrame, out: str | Path | None = None,
            scores: str | Path | pd.DataFrame | None = None, config: AnalysisConfig | None = None,
            table: str = "ratings", progress: bool = False) -> AnalysisResult:
    """Analyse a long-format ratings table; write ``analysis.json`` and tables to ``out`` if given.

    ``ratings`` is a CSV/Parquet path, a folder holding ratings.csv/parquet, a SQLAlchemy URL
    (with a ``table`` of long-format ratings) or a DataFrame. ``scores`` is a scores folder,
    ``scores.parquet`` or a DataFrame, joined on (conversation_id, system).
    """
    import pandas as pd

    from tidekit.analysis._agreement import agreement
    from tidekit.analysis._compare import compare_factor, condition_by_scenario, factor_means
    from tidekit.analysis._demographics import attribute_effects
    from tidekit.analysis._metric_human import load_scores, metric_human
    from tidekit.analysis._power import power_by_simulation
    from tidekit.analysis._ratings import prepare_ratings

    config = config or AnalysisConfig()
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            timings[name] = round(time.perf_counter() - t0, 4)

    raw, source = timed("load", lambda: _load_frame(ratings, table))
    prep = timed("prepare", lambda: prepare_ratings(raw, config))
    df = prep.df
    inputs = {"ratings": source}
    result = AnalysisResult(config=config.model_dump(mode="json"), inputs=inputs, rating=config.columns.rating,
                            scale=(config.scale_min, config.scale_max), summary=prep.summary,  # type: ignore[arg-type]
                            exclusions=prep.exclusions, skipped=list(prep.skipped), notes=list(NOTES))
    if result.summary.simulated:
        result.notes.insert(0, f"SIMULATED RATINGS: {result.summary.simulated_fraction:.0%} of the ratings are "
                               "simulated, not collected from people.")
    factors_present = [f for f in ("system", "condition", "scenario") if f in df and df[f].notna().any()]
    steps: list[tuple[str, Callable[[], None]]] = []

    def means_step() -> None:
        for f in ("system", "condition", "model", "scenario"):
            if f in df and df[f].notna().any():
                result.means.extend(factor_means(df, f, config))

    steps.append(("means", means_step))
    for factor in ("system", "condition"):
        def cmp(factor: str = factor) -> None:
            if factor not in df:
                result.skipped.append(f"{factor} comparison skipped: no {factor} column")
                return
            tests, why = compare_factor(df, factor, config)
            result.tests.extend(tests)
            result.skipped.extend(why)
        steps.append((f"compare {factor}", cmp))

    def scen() -> None:
        tests, why = condition_by_scenario(df, config)
        result.tests.extend(tests)
        result.skipped.extend(why)

    steps.append(("condition by scenario", scen))
    within = [f for f in config.interactions_with if f in factors_present]
    for attr in prep.attributes:
        def demo(attr: str = attr) -> None:
            tests, means, why = attribute_effects(df, prep.raters, attr, within, config)
            result.tests.extend(tests)
            result.means.extend(means)
            result.skipped.extend(why)
        steps.append((f"demographic {attr}", demo))
    if not prep.attributes:
        result.skipped.append("demographic effects skipped: no rater attribute columns (name them with --by)")

    def agree() -> None:
        for col, label in [("rating", config.columns.rating)] + [(c, c[2:]) for c in prep.extra_ratings]:
            for metric in ("ordinal", "interval"):
                result.agreement.append(agreement(df, col, label, (config.scale_min, config.scale_max), metric,  # type: ignore[arg-type]
                                                  config.bootstrap, config.seed, 1 - config.alpha))

    steps.append(("agreement", agree))
    if scores is not None:
        def corr() -> None:
            frame = scores if isinstance(scores, pd.DataFrame) else load_scores(scores)
            inputs["scores"] = "<DataFrame>" if isinstance(scores, pd.DataFrame) else str(scores)
            tests, notes = metric_human(df, frame, config.metrics, config.alpha)
            result.tests.extend(tests)
            result.skipped.extend(notes)
        steps.append(("metric-human", corr))
    else:
        result.skipped.append("metric-human correlation skipped: no --scores given")
    if config.power is not None:
        def power() -> None:
            result.power = power_by_simulation(config.power, config.alpha, config.seed)  # type: ignore[arg-type]
        steps.append(("power", power))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(steps), desc="analyze", unit="step", leave=False)
    for name, fn in steps:
        if bar is not None:
            bar.set_postfix_str(name)
        timed(name, fn)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    apply_corrections(result.tests, config.correction)
    result.timings = timings
    result.inputs = inputs
    if out is not None:
        write_analysis(result, out, config)
    return result


def write_tables(result: AnalysisResult, folder: str | Path) -> list[Path]:
    """Write tests, means, agreement and exclusions as CSV files under ``folder``."""
    import pandas as pd

    from tidekit._io import atomic_path

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
    for name, frame in frames.items():
        path = folder / f"{name}.csv"
        with atomic_path(path, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False)
        written.append(path)
    return written


def write_analysis(result: AnalysisResult, out: str | Path, config: AnalysisConfig) -> None:
    """Write ``analysis.json``, the tables and the manifest to ``out``."""
    from tidekit._io import write_text
    from tidekit._manifest import RunRecorder, StepTiming

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

