"""``tidekit score``: reference metrics, empathy judges and safety checks over generations."""

from __future__ import annotations

from pathlib import Path

import click

from tidekit.cli._common import (
    echo_json,
    example,
    json_option,
    overrides_argument,
    progress_option,
    stderr_console,
    stdout_console,
    stdout_to_stderr,
)

__all__ = ["COMMANDS"]


@click.command("score", **example(
    "tidekit score --generations runs/gen --references runs/data --out runs/scores",
    "tidekit score -g runs/gen-zs -g runs/gen-ft --references runs/data --out runs/scores "
    "--judge smollm2-135m --metrics cosine,rouge_l,distinct bootstrap.n_resamples=5000",
    "tidekit score -g runs/gen --references runs/data --out runs/scores --scorer runs/scorer/epitome"))
@click.option("--generations", "-g", "generations", multiple=True, required=True,
              type=click.Path(path_type=Path),
              help="A generations.jsonl, a folder holding one, or a folder of such folders (repeatable).")
@click.option("--references", "-r", required=True, type=click.Path(path_type=Path),
              help="The dataset with the reference replies (any layout tidekit reads).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML score config (see docs/scoring.md).")
@click.option("--metrics", "metric_names", default=None,
              help="Comma-separated metric names with default params [default: all].")
@click.option("--judge", "judges", default=None,
              help="Comma-separated model aliases or folders to use as empathy judges (local backend).")
@click.option("--scorer", "scorers", multiple=True, type=click.Path(path_type=Path),
              help="A learned scorer folder from 'tidekit scorer train' (repeatable): adds scorer_<name>_<label> "
                   "columns.")
@click.option("--no-reference", is_flag=True, help="Do not add the references as system 'reference'.")
@click.option("--no-safety", is_flag=True, help="Skip the rule-based safety checks.")
@click.option("--seed", type=int, default=None, help="Bootstrap seed [default: 0].")
@progress_option
@json_option("the ScoreResult (counts, systems, judge parse-failure rates, warnings, files)")
@overrides_argument
def score_cmd(generations: tuple[Path, ...], references: Path, out: Path, config_path: Path | None,
              metric_names: str | None, judges: str | None, scorers: tuple[Path, ...], no_reference: bool, no_safety: bool,
              seed: int | None, progress: bool, as_json: bool, overrides: tuple[str, ...]) -> None:
    """Score generations against reference replies: embedding cosine, BERTScore, ROUGE-L,
    METEOR, BLEU, distinct-n and length ratio per reply; optional LLM judges of the three
    empathy factors and learned empathy scorers; safety checks; persona-clustered bootstrap CIs and paired comparisons.

    Writes scores.parquet, aggregates.csv/.md/.tex, comparisons.csv/.md/.tex and manifest.json.
    """
    from tidekit._config import load_config
    from tidekit.metrics import ScoreConfig, score

    # flags are applied after the config file, and explicit KEY=VALUE overrides after them
    flags: dict[str, object] = {"generations": [str(g) for g in generations], "references": references,
                                "seed": seed}
    if metric_names:
        flags["metrics"] = [{"name": n.strip()} for n in metric_names.split(",") if n.strip()]
    if judges:
        flags["judges"] = [{"backend": {"model": j.strip()}} for j in judges.split(",") if j.strip()]
    if scorers:
        flags["scorers"] = [{"path": str(p)} for p in scorers]
    if no_reference:
        flags["include_reference"] = False
    if no_safety:
        flags["safety"] = False
    config = load_config(ScoreConfig, config_path, overrides, flags=flags)
    with stdout_to_stderr(as_json):
        result = score(config, out=out, progress=progress)
    if as_json:  # warnings are in the JSON; stderr still shows them to a person watching
        for warning in result.warnings:
            stderr_console().print(f"[bold red]warning:[/] {warning}", markup=True, highlight=False)
        echo_json(result)
        return
    console = stdout_console()
    console.print(f"scored {result.scored} replies of {len(result.systems)} system(s) "
                  f"({result.excluded} excluded) -> {result.out}")
    for judge, rate in result.parse_failure_rate.items():
        console.print(f"judge {judge}: parse-failure rate {rate:.1%}")
    if result.warnings:
        err = stderr_console()
        for warning in result.warnings:
            err.print(f"[bold red]warning:[/] {warning}", markup=True, highlight=False)
    md = (Path(result.out) / "aggregates.md").read_text(encoding="utf-8")
    click.echo(md.split("\n\n### ")[0])


COMMANDS = [score_cmd]
