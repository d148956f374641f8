"""``report``: one self-contained HTML file (plus figures and tables) from a run folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from tidekit._io import write_text
from tidekit._layout import RunLayout
from tidekit._manifest import RunRecorder
from tidekit.analysis import summary_rows
from tidekit.errors import DataError
from tidekit.reporting._config import ReportConfig
from tidekit.reporting._figures import RenderedFigure, metric_columns_in, render_figures
from tidekit.reporting._run import RunContents, discover_run
from tidekit.reporting._tables import Table, to_html, write_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReportResult", "report"]


class ReportResult(BaseModel):
    """What ``report`` wrote."""

    html: Path = Field(description="The self-contained HTML report.")
    figures: list[str] = Field(default_factory=list, description="Figure keys rendered (PNG + SVG each).")
    tables: list[str] = Field(default_factory=list, description="Table keys written (CSV, Markdown, LaTeX).")
    missing: list[str] = Field(default_factory=list, description="Parts of the run that were absent.")
    simulated: bool = Field(default=False, description="True when the ratings shown are simulated.")
    screenshot: Path | None = Field(default=None, description="Screenshot of the rendered page, if taken.")


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows)


def _test_rows(tests: list[Any], cols: tuple[str, ...] = ("family", "role", "term", "test", "level", "scale",
                                                          "estimate", "ci_low",
                                                          "ci_high", "statistic_name", "statistic", "df", "df2",
                                                          "p", "p_adjusted", "effect_size_name", "effect_size",
                                                          "n")) -> pd.DataFrame:
    rows = []
    for t in tests:
        row = {c: getattr(t, c) for c in cols}
        row["flags"] = "; ".join(t.flags)
        rows.append(row)
    return _frame(rows)


def _build_tables(c: RunContents) -> list[Table]:
    import pandas as pd

    tables: list[Table] = []
    if c.dataset_summary is not None:
        s = c.dataset_summary
        tables.append(Table("dataset_scenarios", "Conversations per scenario",
                            _frame([{"scenario": k, "conversations": v} for k, v in s.scenarios.items()])))
    if c.generations:
        tables.append(Table("generations", "Generations per system",
                            _frame([{"system": k, **v} for k, v in sorted(c.generations.items())])))
    if c.scores is not None and {"model", "condition"} <= set(c.scores.columns):
        metrics = metric_columns_in(c.scores)
        if metrics:
            g = c.scores.groupby(["model", "condition"])[metrics].mean().reset_index()
            g.insert(2, "n", c.scores.groupby(["model", "condition"]).size().to_numpy())
            tables.append(Table("metrics_by_model_condition", "Mean automatic metrics per model and condition", g))
    elif c.aggregates is not None:
        tables.append(Table("aggregates", "Aggregates (from scores/aggregates.csv)", c.aggregates))
    if c.comparisons is not None:
        tables.append(Table("score_comparisons", "Metric comparisons (from scores/comparisons.csv)", c.comparisons))
    tables += _judge_validation_tables(c)
    a = c.analysis
    if a is not None:
        tables.append(Table("human_means", "Mean human rating by system, condition and scenario (rater means)",
                            _frame([m.model_dump(exclude={"flags", "unit"}) for m in a.means
                                    if m.analysis in ("system", "condition", "model", "scenario")])))
        comps = [t for t in a.tests if t.analysis in ("system", "condition") and t.role != "descriptive"]
        if comps:
            tables.append(Table("comparisons", "System and condition comparisons (primary: the findings; "
                                               "sensitivity: shown beside them)", _test_rows(comps),
                                "LMM: crossed random intercepts for rater, conversation and reply (and rater-by-"
                                "system where identified), Satterthwaite df; pairwise contrasts Holm-corrected and "
                                "gated by the omnibus F. Wilcoxon paired by conversation. Only role=primary rows "
                                "are findings."))
        scen = [t for t in a.tests if t.analysis == "condition_by_scenario"]
        if scen:
            tables.append(Table("condition_by_scenario", "Fine-tuning gain by scenario", _test_rows(scen)))
        demo = [t for t in a.tests if t.analysis == "demographic" and t.finding]
        if demo:
            tables.append(Table("demographic_effects", "Demographic effects (rater-aware: the findings)",
                                _test_rows(demo), "Rater level: one value per rater. LMM: rater and item random "
                                                  "intercepts (and rater-by-factor for interactions)."))
            tables.append(Table("demographic_means", "Mean rating by rater attribute (rater means)",
                                _frame([m.model_dump(exclude={"unit"}) | {"flags": "; ".join(m.flags)}
                                        for m in a.means if m.analysis in a.summary.attributes])))
        sens = [t for t in a.tests if t.analysis == "demographic" and t.role == "sensitivity"]
        if sens:
            tables.append(Table("demographic_sensitivity", "Demographic effects: sensitivity analyses (NOT findings)",
                                _test_rows(sens), "Other tests of the same questions, shown beside the primary "
                                                  "test; they never add findings."))
        naive = [t for t in a.tests if t.role == "descriptive"]
        if naive:
            tables.append(Table("rating_level_tests", "Rating-level and rater-paired tests (NOT findings: shown "
                                                      "for comparison)",
                                _test_rows(naive), naive[0].label or ""))
        if a.agreement:
            tables.append(Table("agreement", "Inter-rater agreement (Krippendorff's alpha)",
                                _frame([x.model_dump() for x in a.agreement])))
        if a.ppi is not None:
            tables += _ppi_tables(a.ppi)
        mh = [t for t in a.tests if t.analysis == "metric_human"]
        if mh:
            tables.append(Table("metric_human", "Automatic metric vs human rating (Spearman)", _test_rows(mh)))
        if a.exclusions:
            tables.append(Table("exclusions", "Exclusions",
                                _frame([e.model_dump(exclude={"detail"}) | {"examples": ", ".join(e.detail[:5])}
                                        for e in a.exclusions])))
    return [t for t in tables if isinstance(t.frame, pd.DataFrame) and not t.frame.empty]


def _ppi_tables(ppi: Any) -> list[Table]:
    """System means human-only beside prediction-powered, the paired differences, and the design help."""
    first = ppi.estimates[0].rating if ppi.estimates else None
    note = (f"Predictor: {ppi.predictor_fit}. {ppi.interval}. Unit: the conversation ({ppi.rated_conversations} "
            f"rated, {ppi.unrated_conversations} with scores only); a reply's human value is the "
            f"{ppi.rater_adjustment}. Sampling: {ppi.sampling or 'not stated'}. effective_n: the human-rated "
            "conversations the estimate is worth; "
            "width_ratio: human-only CI width over the prediction-powered one.")
    diffs = [{"difference": e.target, "human_only": e.human_estimate, "human_ci_low": e.human_ci_low,
              "human_ci_high": e.human_ci_high, "human_p": e.human_p, "ppi": e.estimate, "ppi_ci_low": e.ci_low,
              "ppi_ci_high": e.ci_high, "p": e.p, "p_holm": e.p_adjusted, "lambda": e.lam,
              "effective_n": e.effective_n} for e in ppi.estimates if e.rating == first and e.kind == "difference"]
    tables = [Table("ppi_means", "Prediction-powered and human-only means by system", _frame(summary_rows(ppi)),
                    note),
              Table("ppi_differences", "Paired differences between systems (by conversation)", _frame(diffs),
                    "p_holm: Holm over the pairs. Not a finding: the LMM above is the primary test.")]
    if ppi.design:
        tables.append(Table("ppi_design", "Rated conversations for a target CI width",
                            _frame([d.model_dump() for d in ppi.design])))
    return tables


EPITOME_NOTE = ("tidekit's own measurements on real human labels (EPITOME, Sharma et al. 2020: crowd-annotated "
                "Reddit replies; not this run's data), the SmolLM2 judge beside a learned scorer on pairs from "
                "seeker posts it never saw, are in docs/scoring.md, 'Agreement with people'.")


def _judge_validation_tables(c: RunContents) -> list[Table]:
    """The judges against human labels (judge_validation/validation.json), when the run has it."""
    v = c.judge_validation
    if not v:
        return []
    rows = [{"judge": r["judge"], "criterion": r["criterion"], "human": r["human"], "n": r["n"],
             "spearman": r["spearman"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "kendall": r["kendall"],
             "undefined": r.get("undefined_reason") or ""}
            for r in v.get("correlations", []) if r.get("score") in (v.get("table_score"), "prediction")]
    rows += [{"judge": "(humans)", "criterion": a["human_a"], "human": a["human_b"], "n": a["n"],
              "spearman": a["spearman"], "ci_low": a["ci_low"], "ci_high": a["ci_high"], "kendall": a["kendall"],
              "undefined": a.get("undefined_reason") or ""} for a in v.get("human_agreement", [])]
    rates = ", ".join(f"{j['judge']} {j['parse_failure_rate']:.0%}" for j in v.get("judges", []))
    note = (f"{v.get('n_items')} labelled replies from {v.get('labels')}; judge scores: {v.get('table_score')}; "
            f"parse-failure rate: {rates}; intervals: {v.get('confidence', 0.95):.0%} bootstrap over items. "
            "Rows 'scorer:...' are learned scorers' predictions. Rows '(humans)' are the agreement of two human "
            "columns, the ceiling a judge can reach. These figures measure agreement with people only if people "
            "wrote the labels: a file written by the study's own developers (such as tidekit's test fixture) "
            "measures agreement with them. " + EPITOME_NOTE)
    return [Table("judge_validation", "Judge vs human labels (Spearman, Kendall tau-b)", _frame(rows), note)]


def _sections(c: RunContents, figs: dict[str, RenderedFigure], tables: dict[str, Table]) -> list[dict[str, Any]]:
    from tidekit.reporting._methods import methods_paragraphs

    def fig(key: str) -> list[dict[str, Any]]:
        f = figs.get(key)
        return [{"kind": "figure", "key": f.key, "title": f.title, "caption": f.caption, "b64": f.png_b64}] if f else []

    def tab(key: str) -> list[dict[str, Any]]:
        t = tables.get(key)
        return [{"kind": "table", "title": t.title, "html": to_html(t), "note": t.note}] if t else []

    sections: list[dict[str, Any]] = []
    s = c.dataset_summary
    kpis = [("personas", s.personas), ("conversations", s.conversations), ("with reference", s.with_reference)] if s else []
    sections.append({"id": "dataset", "title": "Dataset", "kpis": kpis,
                     "intro": "" if s else "No dataset in this run.",
                     "blocks": tab("dataset_scenarios") + tab("generations")})
    judge_warnings = ([{"kind": "list", "items": [f"Judge warning: {w}" for w in c.judge_warnings]}]
                      if c.judge_warnings else [])
    sections.append({"id": "metrics", "title": "Automatic metrics", "kpis": [],
                     "intro": "" if c.scores is not None else "No scores in this run.",
                     "blocks": judge_warnings + tab("metrics_by_model_condition") + tab("aggregates") + fig("metrics")
                     + fig("scenarios") + fig("ceiling") + fig("training") + tab("score_comparisons")
                     + fig("judge_validation") + tab("judge_validation")})
    a = c.analysis
    if a is not None:
        sm = a.summary
        kp = [("ratings", sm.ratings), ("raters", sm.raters), ("items", sm.items),
              ("rows read", sm.input_rows)]
        excl = [{"kind": "list", "items": [f"{e.rows} rows, {e.raters} raters left out of {e.scope}: {e.reason}"
                                            for e in a.exclusions]}] if a.exclusions else []
        sections.append({"id": "human", "title": "Human ratings", "kpis": kp,
                         "intro": f"Rating analysed: {a.rating} on a {a.scale[0]}-{a.scale[1]} scale.",
                         "blocks": excl + fig("human") + tab("human_means") + tab("comparisons")
                         + tab("condition_by_scenario")})
        if a.ppi is not None:
            pp = a.ppi
            checks = [{"kind": "list", "items": [f"Check: {f}" for f in pp.flags]}] if pp.flags else []
            sections.append({
                "id": "ppi", "title": "Prediction-powered estimates", "kpis": [
                    ("predictor", ", ".join(pp.predictor)), ("rated conversations", pp.rated_conversations),
                    ("scores only", pp.unrated_conversations),
                    ("median lambda", f"{_median([e.lam for e in pp.estimates if e.kind == 'system']):.2f}"),
                    ("median effective n", f"{_median([e.effective_n for e in pp.estimates if e.kind == 'system']):.0f}")],
                "intro": "The human ratings of the rated conversations, corrected with the automatic score that "
                         "every conversation has (PPI++: the mean score over the unrated conversations plus the "
                         "mean human-minus-score gap, weighted by lambda, on the rated ones). Valid when the "
                         "rated conversations are a random sample and the predictor never saw their ratings.",
                "blocks": checks + fig("ppi") + tab("ppi_means") + tab("ppi_differences") + tab("ppi_design")
                + [{"kind": "list", "items": [f"Assumption: {x}" for x in pp.assumptions]}]})
        sections.append({"id": "demographics", "title": "Demographic effects", "kpis": [],
                         "intro": "Rater attributes are tested with one value per rater and with mixed models that "
                                  "have rater and item random intercepts. Rating-level tests follow in their own, "
                                  "labelled table: they ignore that ratings by one rater are correlated.",
                         "blocks": fig("demographics") + tab("demographic_means") + tab("demographic_effects")
                         + tab("rating_level_tests")})
        sections.append({"id": "agreement", "title": "Agreement", "kpis": [], "intro": "",
                         "blocks": fig("agreement") + tab("agreement")})
        sections.append({"id": "metric-human", "title": "Metric vs human", "kpis": [],
                         "intro": "" if "metric_human" in tables else "No metric-human correlation (needs scores "
                                                                      "and ratings of the same conversations).",
                         "blocks": fig("metric_human") + tab("metric_human")})
        if a.power is not None:
            p = a.power
            sections.append({"id": "power", "title": "Power", "kpis": [], "intro": "", "blocks": [{
                "kind": "text", "text": f"Power {p.power:.2f} (95% CI {p.ci_low:.2f}-{p.ci_high:.2f}) of the "
                                        f"{p.test} at alpha {p.alpha} over {p.simulations} simulated studies "
                                        f"with {p.config}."}]})
    else:
        sections.append({"id": "human", "title": "Human ratings", "kpis": [], "blocks": [],
                         "intro": "No analysis of human ratings in this run."})
    notes = [{"kind": "list", "items": a.notes}] if a is not None else []
    skipped = [{"kind": "text", "cls": "note", "text": "Not run: " + "; ".join(a.skipped)}] if a and a.skipped else []
    methods = [{"kind": "method", "m": m} for m in methods_paragraphs(c.manifests)]
    sections.append({"id": "methods", "title": "Methods", "kpis": [],
                     "intro": "Generated from each stage's manifest.json." if c.manifests else "No manifests found.",
                     "blocks": notes + skipped + methods})
    return sections


def _median(values: list[float]) -> float:
    import numpy as np

    return float(np.median(values)) if values else float("nan")


def report(config: ReportConfig, *, out: str | Path | None = None) -> ReportResult:
    """The report stage: write ``report.html`` (self-contained), ``figures/`` and ``tables/`` for
    the run folder ``config.run`` into ``out`` (default: ``RUN/report``).

    With ``config.analyze``, ratings without an analysis are analysed first (into
    ``RUN/analysis``). ``config.screenshot`` saves ``screenshot.png`` of the page rendered by
    headless Chromium (needs playwright and a chromium binary).
    """
    import jinja2

    layout = RunLayout(config.run)
    run_dir, title, analyze, screenshot = layout.root, config.title, config.analyze, config.screenshot
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run folder")
    out = Path(out) if out is not None else layout.report
    with RunRecorder(out, command="report", config=config, inputs={"run": str(run_dir)}) as rec:
        with rec.step("discover"):
            contents = discover_run(run_dir)
        if contents.analysis is None and contents.ratings_path is not None and analyze:
            from tidekit.analysis import AnalysisConfig
            from tidekit.analysis import analyze as run_analysis

            with rec.step("analyze"):
                scores = layout.scores if contents.scores is not None else None
                run_analysis(AnalysisConfig(), out=layout.analysis, ratings=contents.ratings_path, scores=scores)
                contents = discover_run(run_dir)
        with rec.step("figures"):
            figs, absent = render_figures(contents, out / "figures")
        with rec.step("tables"):
            tables = {t.key: t for t in _build_tables(contents)}
            for t in tables.values():
                write_table(t, out / "tables")
        a = contents.analysis
        simulated = ""
        if a is not None and a.summary.simulated:
            simulated = f"{a.summary.simulated_fraction:.0%}"
        missing = [*contents.missing, *(f"figure not drawn (no data): {t}" for t in absent)]
        page = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
            _template()).render(
            title=title or f"tidekit report: {run_dir.name}", run=str(run_dir),
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), simulated=simulated,
            missing=missing, sections=_sections(contents, figs, tables))
        html = out / "report.html"
        write_text(html, page)
        shot = None
        if screenshot:
            from tidekit.reporting._screenshot import screenshot_html

            with rec.step("screenshot"):
                shot = screenshot_html(html, out / "screenshot.png")
        rec.counts.update(figures=len(figs), tables=len(tables), missing=len(missing))
        rec.extra.update(missing=missing, simulated=bool(simulated))
    return ReportResult(html=html, figures=list(figs), tables=list(tables), missing=missing,
                        simulated=bool(simulated), screenshot=shot)


def _template() -> str:
    from tidekit.reporting._template import TEMPLATE

    return TEMPLATE
