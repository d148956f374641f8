"""``tidekit judge validate``: how well an empathy judge agrees with human labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tidekit.backends import backend_kinds
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


@click.group("judge", **example("tidekit judge validate --labels labels.csv --human total --out runs/judge-check"))
def judge_group() -> None:
    """The empathy judge on its own: check it against human labels before trusting its scores."""


@judge_group.command("validate", **example(
    "tidekit judge validate --labels labels.csv --human total --out runs/judge-check",
    "tidekit judge validate --labels labels.jsonl --human rater_a --human rater_b --out runs/judge-check "
    "--backend openai --model my-judge --base-url http://127.0.0.1:8000/v1 bootstrap.n_resamples=5000",
    "tidekit judge validate --labels epitome.csv --human total --scorer runs/scorer/epitome --judge smollm2-135m "
    "--out runs/judge-check"))
@click.option("--labels", required=True, type=click.Path(path_type=Path),
              help="CSV, JSONL or Parquet with id, context, response and the human score columns, or a "
                   "'tidekit rate export' file (docs/scoring.md).")
@click.option("--human", "human", multiple=True, required=True,
              help="A human score column to validate against (repeatable; several give the human-human ceiling).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="A score config YAML: its judges, judge options, bootstrap and seed are used.")
@click.option("--judge", "--model", "model", default=None,
              help="The judge: registry alias, local folder, or server-side model name. [smollm2-135m, unless the "
                   "config names judges or only --scorer is given]")
@click.option("--scorer", "scorers", multiple=True, type=click.Path(path_type=Path),
              help="A learned scorer folder to validate beside the judges (repeatable).")
@click.option("--backend", "kind", default=None, type=click.Choice(backend_kinds()),
              help="Which backend runs the judge. [hf]")
@click.option("--base-url", default=None, help="openai/anthropic: server URL, e.g. http://127.0.0.1:8000/v1.")
@click.option("--seed", type=int, default=None, help="Bootstrap seed [default: 0].")
@progress_option
@json_option("the validation (the content of OUT/validation.json)")
@overrides_argument
def validate_cmd(labels: Path, human: tuple[str, ...], out: Path, config_path: Path | None, model: str | None,
                 scorers: tuple[Path, ...], kind: str | None, base_url: str | None, seed: int | None, progress: bool, as_json: bool,
                 overrides: tuple[str, ...]) -> None:
    """Judge (and score, with --scorer) every labelled reply and write validation.json: Spearman
    and Kendall (bootstrap 95% CIs) of each judge criterion and each scorer label with each human column, the parse-failure rate, the
    human-human agreement when several columns are given, and a scatter/calibration figure.
    """
    from tidekit._config import load_config
    from tidekit.metrics import ScoreConfig, validate_judge

    flags: dict[str, object] = {"seed": seed}
    if model or kind or base_url:
        flags["judges"] = [{"backend": {k: v for k, v in (("model", model), ("kind", kind), ("base_url", base_url))
                                        if v}}]
    if scorers:
        flags["scorers"] = [{"path": str(p)} for p in scorers]
    config = load_config(ScoreConfig, config_path, overrides, flags=flags)
    with stdout_to_stderr(as_json):
        result = validate_judge(labels, list(human), out, config, progress=progress)
    if as_json:
        echo_json(result)
        return
    console = stdout_console()
    console.print(f"judged {result.n_items} labelled replies -> {out / 'validation.json'}")
    for s in result.judges:
        console.print(f"judge {s.judge}: parse-failure rate {s.parse_failure_rate:.1%}, scores: {s.score_source}")
        for warning in s.warnings:
            console.print(f"  warning: {warning}")
    from rich.table import Table

    table = Table("judge / scorer", "criterion", "human", "Spearman [95% CI]", "Kendall", "n")
    for c in _table_rows(result):
        if c.spearman is None:
            table.add_row(c.judge, c.criterion, c.human, f"undefined ({c.undefined_reason})", "-", str(c.n))
            continue
        ci = f" [{c.ci_low:.3f}, {c.ci_high:.3f}]" if c.ci_low is not None and c.ci_high is not None else ""
        table.add_row(c.judge, c.criterion, c.human, f"{c.spearman:.3f}{ci}", f"{c.kendall:.3f}", str(c.n))
    console.print(table)
    for a in result.human_agreement:
        shown = f"{a.spearman:.3f}" if a.spearman is not None else f"undefined ({a.undefined_reason})"
        console.print(f"  ceiling {a.human_a} vs {a.human_b}: Spearman {shown}, n={a.n}")


def _table_rows(result: Any) -> list[Any]:
    """The rows shown: each judge's overall score, and each scorer label named like a human column
    (every label of a scorer that has none), against each human column."""
    rows = [c for c in result.correlations if c.score == result.table_score and c.criterion == "overall"]
    for c in result.correlations:
        if c.score != "prediction":
            continue
        labels = {x.criterion for x in result.correlations if x.judge == c.judge}
        if c.criterion == c.human or not labels & set(result.human_columns):
            rows.append(c)
    return sorted(rows, key=lambda c: (result.human_columns.index(c.human), c.score == "prediction", c.judge))


COMMANDS = [judge_group]
