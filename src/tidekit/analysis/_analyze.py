"""``analyze``: read ratings (and scores), run every analysis, correct within families, write.

Output folder: ``analysis.json`` (an :class:`AnalysisResult`), ``tables/*.csv`` (tests,
means, agreement, exclusions) and ``manifest.json``. Rerunning with the same inputs and
config rewrites the same files (seeded bootstraps), so reruns are idempotent.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidekit.analysis._config import AnalysisConfig
from tidekit.analysis._effects import adjust
from tidekit.analysis._results import ANALYSIS_FILE, AnalysisResult, TestResult

if TYPE_CHECKING:
    import pandas as pd

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


@dataclass
class _Shared:
    """What every step reads; set before steps run (and inherited by forked workers)."""

    df: pd.DataFrame
    raters: pd.DataFrame
    config: AnalysisConfig
    within: list[str]
    extra_ratings: list[str]
    scores: pd.DataFrame | None


_SHARED: _Shared | None = None


def _run_step(kind: str, arg: str | None) -> dict[str, Any]:
    """Run one analysis step on the shared data; returns its partial results and wall time."""
    from tidekit.analysis._agreement import agreement
    from tidekit.analysis._compare import compare_factor, condition_by_scenario, factor_means
    from tidekit.analysis._demographics import attribute_effects, skip_on_failure
    from tidekit.analysis._metric_human import metric_human
    from tidekit.analysis._power import power_by_simulation

    assert _SHARED is not None
    sh, t0 = _SHARED, time.perf_counter()
    df, config = sh.df, sh.config
    out: dict[str, Any] = {"tests": [], "skipped": []}
    if kind == "means":
        out["means"] = [m for f in ("system", "condition", "model", "scenario")
                        if f in df and df[f].notna().any() for m in factor_means(df, f, config)]
    elif kind == "compare":
        assert arg is not None
        if arg in df:
            with skip_on_failure(f"{arg} comparison", out["skipped"]):
                out["tests"], out["skipped"] = compare_factor(df, arg, config)
        else:
            out["skipped"] = [f"{arg} comparison skipped: no {arg} column"]
    elif kind == "scenario":
        with skip_on_failure("condition-by-scenario LMM", out["skipped"]):
            out["tests"], out["skipped"] = condition_by_scenario(df, config)
    elif kind == "demographic":
        assert arg is not None
        out["tests"], out["means"], out["skipped"] = attribute_effects(df, sh.raters, arg, sh.within, config)
    elif kind == "agreement":
        out["agreement"] = [agreement(df, col, label, (config.scale_min, config.scale_max), metric,
                                      config.bootstrap, config.seed, 1 - config.alpha)
                            for col, label in [("rating", config.columns.rating)]
                            + [(c, c[2:]) for c in sh.extra_ratings] for metric in ("ordinal", "interval")]
    elif kind == "metric":
        assert sh.scores is not None
        out["tests"], out["skipped"] = metric_human(df, sh.scores, config.metrics, config.alpha)
    elif kind == "power":
        assert config.power is not None
        out["power"] = power_by_simulation(config.power, config.alpha, config.seed)
    out["wall_s"] = round(time.perf_counter() - t0, 4)
    return out


def _workers(config: AnalysisConfig, n: int) -> int:
    if config.workers:
        return config.workers
    return 1 if n < 20_000 else min(2, os.cpu_count() or 1)  # forking only pays off on large data


def _run_steps(steps: list[tuple[str, str, str | None]], workers: int,
               progress: bool) -> list[tuple[str, dict[str, Any]]]:
    """Run steps in order, or across forked worker processes; results keep the step order."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(steps), desc="analyze", unit="step", leave=False)
    results: dict[str, dict[str, Any]] = {}
    try:
        if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            for name, kind, arg in steps:
                if bar is not None:
                    bar.set_postfix_str(name)
                results[name] = _run_step(kind, arg)
                if bar is not None:
                    bar.update()
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(_run_step, kind, arg): name for name, kind, arg in steps}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()
    return [(name, results[name]) for name, _, _ in steps]


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

    from tidekit.analysis._metric_human import load_scores
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
    factors_present = [f for f in ("system", "condition", "scenario") if f in df and df[f].notna().any()]
    steps: list[tuple[str, str, str | None]] = [("means", "means", None)]
    steps += [(f"compare {f}", "compare", f) for f in ("system", "condition")]
    steps.append(("condition by scenario", "scenario", None))
    steps += [(f"demographic {a}", "demographic", a) for a in prep.attributes]
    if not prep.attributes:
        result.skipped.append("demographic effects skipped: no rater attribute columns (name them with --by)")
    steps.append(("agreement", "agreement", None))
    frame = None
    if scores is not None:
        frame = scores if isinstance(scores, pd.DataFrame) else timed("load scores", lambda: load_scores(scores))
        inputs["scores"] = "<DataFrame>" if isinstance(scores, pd.DataFrame) else str(scores)
        steps.append(("metric-human", "metric", None))
    else:
        result.skipped.append("metric-human correlation skipped: no --scores given")
    if config.power is not None:
        steps.append(("power", "power", None))
    global _SHARED
    _SHARED = _Shared(df, prep.raters, config, [f for f in config.interactions_with if f in factors_present],
                      prep.extra_ratings, frame)
    try:
        partials = _run_steps(steps, _workers(config, len(df)), progress)
    finally:
        _SHARED = None
    for name, part in partials:
        timings[name] = part.pop("wall_s")
        result.tests.extend(part.get("tests", []))
        result.means.extend(part.get("means", []))
        result.agreement.extend(part.get("agreement", []))
        result.skipped.extend(part.get("skipped", []))
        if part.get("power") is not None:
            result.power = part["power"]
    apply_corrections(result.tests, config.correction)
    result.timings = timings
    result.inputs = inputs
    if out is not None:
        write_analysis(result, out, config)
    return result


def _primary_names(config: AnalysisConfig, attributes: list[str]) -> dict[str, str]:
    p = config.primary
    out: dict[str, str] = {"system": p.system, "condition": p.condition,
                           "condition_by_scenario": p.condition_by_scenario}
    out.update({f"demographic:{a}": p.main_test(a) for a in attributes})
    out["demographic_interaction"] = p.demographic_interaction
    return out


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

