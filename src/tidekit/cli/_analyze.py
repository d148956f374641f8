"""``tidekit analyze``: statistics on a long-format ratings table (and optional scores)."""

from __future__ import annotations

from pathlib import Path

import click

from tidekit.cli._common import (
    echo_json,
    example,
    json_option,
    overrides_argument,
    progress_option,
    stdout_console,
    stdout_to_stderr,
)

__all__ = ["COMMANDS"]

_COLUMN_FLAGS = ("rater", "item", "rating", "conversation", "system", "model", "condition", "scenario")


@click.command("analyze", **example(
    "tidekit analyze --ratings runs/study/ratings/ratings.parquet --out runs/study/analysis --scores runs/study/scores",
    "tidekit analyze --ratings other.csv --out an/ --rater-col worker --item-col reply_id --rating-col score --by age,education",
    "tidekit analyze --ratings r.csv --out an/ power.raters=200 power.effect=0.4 correction=fdr_bh",
    "tidekit analyze --ratings r.csv --out an/ --by age_group primary.demographic=trend primary.system=ordinal"))
@click.option("--ratings", required=True, help="Ratings: CSV/TSV/Parquet file, folder with ratings.csv|parquet, "
                                               "or a SQLAlchemy URL with a long-format table.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for analysis.json and tables.")
@click.option("--scores", type=click.Path(path_type=Path), default=None,
              help="Scores folder or scores.parquet, for the metric-vs-human correlation and the "
                   "prediction-powered estimates (ppi.predictor names the score).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="YAML AnalysisConfig.")
@click.option("--table", default=None, help="Table or view name when --ratings is a URL [ratings].")
@click.option("--rater-col", "rater", default=None, help="Rater id column [rater_id].")
@click.option("--item-col", "item", default=None, help="Rated item column [item_id].")
@click.option("--rating-col", "rating", default=None, help="Rating column [empathy].")
@click.option("--conversation-col", "conversation", default=None, help="Conversation id column [conversation_id].")
@click.option("--system-col", "system", default=None, help="System column [system].")
@click.option("--model-col", "model", default=None, help="Model column [model].")
@click.option("--condition-col", "condition", default=None, help="Condition column [condition].")
@click.option("--scenario-col", "scenario", default=None, help="Scenario column [scenario_id].")
@click.option("--by", default=None, help="Comma-separated rater attribute columns, e.g. age_group,education,gender.")
@click.option("--scale", default=None, help="Rating scale as MIN-MAX [1-7].")
@click.option("--power", "with_power", is_flag=True,
              help="Also compute power by simulation (power.* overrides) and, with --scores, the rated "
                   "conversations a target CI width needs with and without the predictor (ppi.target_width).")
@progress_option
@json_option("the AnalysisResult (the content of OUT/analysis.json)")
@overrides_argument
def analyze_cmd(ratings: str, out: Path, scores: Path | None, config_path: Path | None, table: str | None,
                by: str | None, scale: str | None, with_power: bool, progress: bool, as_json: bool,
                overrides: tuple[str, ...],
                **columns: str | None) -> None:
    """Compare systems and conditions, test rater demographics (rater-aware), measure agreement,
    correlate metrics with ratings, and write analysis.json plus CSV tables to --out.

    Each question has one primary test (primary.*; the findings) and sensitivity analyses
    beside it. Systems and conditions: an LMM with rater, conversation and reply random
    intercepts (Satterthwaite df). Rater attributes are tested at the rater level and with rater
    and item random effects; a rating-level test appears only beside them, labelled (it
    overstates the evidence). See docs/analysis.md.
    """
    from tidekit._config import load_config
    from tidekit.analysis import AnalysisConfig, analyze
    from tidekit.errors import ConfigError

    flags: dict[str, object] = {f"columns.{k}": v for k, v in columns.items() if k in _COLUMN_FLAGS}
    flags.update(ratings=ratings, scores=scores, table=table)
    if by is not None:
        flags["by"] = [b.strip() for b in by.split(",") if b.strip()]
    if scale is not None:
        lo, sep, hi = scale.partition("-")
        if not sep or not lo.strip().lstrip("-").isdigit() or not hi.strip().isdigit():
            raise ConfigError(f"--scale {scale!r}: write it as MIN-MAX, e.g. 1-7")
        flags.update(scale_min=int(lo), scale_max=int(hi))
    if with_power and not any(o.startswith("power") for o in overrides):
        flags["power"] = {}
    config = load_config(AnalysisConfig, config_path, overrides, flags=flags)
    with stdout_to_stderr(as_json):
        result = analyze(config, out=out, progress=progress)
    if as_json:
        echo_json(result)
        return
    render(result)
    click.echo(f"wrote {out / 'analysis.json'} and {out / 'tables'}/")


def render(result: object) -> None:
    """Print the findings: comparisons, rater-aware demographic tests, agreement, exclusions."""
    from rich.table import Table

    from tidekit.analysis import AnalysisResult

    assert isinstance(result, AnalysisResult)
    console = stdout_console()
    s = result.summary
    if s.simulated:
        console.print(f"[bold yellow]SIMULATED RATINGS ({s.simulated_fraction:.0%} of rows): not data from "
                      "people[/bold yellow]")
    console.print(f"[bold]{s.ratings}[/bold] ratings by {s.raters} raters of {s.items} items "
                  f"({s.input_rows} rows read)")
    for e in result.exclusions:
        console.print(f"[yellow]excluded[/yellow] {e.rows} rows / {e.raters} raters ({e.scope}): {e.reason}")
    table = Table("family", "term", "test", "unit", "estimate [CI]", "p", "p adj", title="Findings",
                  title_justify="left")
    for t in result.tests:
        if not t.finding or t.family.endswith(("lmm-coef", "dunn")) or ":" in t.family.split("/")[-1]:
            continue
        est = "" if t.estimate is None else f"{t.estimate:.3g}" + (
            f" [{t.ci_low:.3g}, {t.ci_high:.3g}]" if t.ci_low is not None and t.ci_high is not None else "")
        table.add_row(t.family, t.term, t.test, t.level, est, _fmt(t.p), _fmt(t.p_adjusted))
    console.print(table)
    if result.ppi is not None:
        _render_ppi(result.ppi, console)
    for a in result.agreement:
        if a.alpha is not None:
            ci = f" [{a.ci_low:.3f}, {a.ci_high:.3f}]" if a.ci_low is not None else ""
            console.print(f"Krippendorff's alpha ({a.rating}, {a.level_of_measurement}): {a.alpha:.3f}{ci}")
    for line in result.skipped:
        console.print(f"[dim]skipped: {line}[/dim]")


def _render_ppi(ppi: object, console: object) -> None:
    """The prediction-powered system means beside the human-only ones, and the design help."""
    from rich.console import Console
    from rich.table import Table

    from tidekit.analysis import PPIResult

    assert isinstance(ppi, PPIResult) and isinstance(console, Console)
    first = ppi.estimates[0].rating
    table = Table("system", "human-only [CI]", "prediction-powered [CI]", "lambda", "effective n",
                  title=f"Prediction-powered means ({first}; predictor {', '.join(ppi.predictor)}; "
                        f"{ppi.rated_conversations} rated + {ppi.unrated_conversations} unrated conversations)",
                  title_justify="left")
    for e in ppi.estimates:
        if e.rating == first and e.kind in ("system", "condition"):
            table.add_row(e.target, f"{e.human_estimate:.2f} [{e.human_ci_low:.2f}, {e.human_ci_high:.2f}]",
                          f"{e.estimate:.2f} [{e.ci_low:.2f}, {e.ci_high:.2f}]", f"{e.lam:.2f}",
                          f"{e.effective_n:.0f} of {e.n_rated} rated")
    console.print(table)
    if ppi.sampling:
        console.print(f"sampling: {ppi.sampling}")
    for flag in ppi.flags:
        console.print(f"[yellow]ppi:[/yellow] {flag}")
    for d in ppi.design:
        human, with_ppi = (f"{v:,}" if v is not None else f"more than {d.conversations:,}"
                           for v in (d.n_human_only, d.n_ppi))
        console.print(f"design: a {d.target} to a {d.target_width:g}-point CI needs {human} rated "
                      f"conversations human-only, {with_ppi} with the predictor (sd {d.sd:.2f}, correlation "
                      f"{d.correlation:.2f}, of {d.conversations:,} scored)")


def _fmt(p: float | None) -> str:
    return "" if p is None else ("<1e-4" if p < 1e-4 else f"{p:.4f}")


COMMANDS = [analyze_cmd]
