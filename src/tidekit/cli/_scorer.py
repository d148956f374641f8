"""``tidekit scorer train``: a learned empathy scorer from human labels."""

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


@click.group("scorer", **example("tidekit scorer train --labels labels.csv --label total --out runs/scorer/mine"))
def scorer_group() -> None:
    """Learned empathy scorers: a small encoder trained on human labels, validated on groups it never saw."""


@scorer_group.command("train", **example(
    "tidekit scorer train --labels epitome.csv --label er --label ip --label ex --label total "
    "--group seeker_id --out runs/scorer/epitome",
    "tidekit scorer train --labels runs/ratings/ratings.parquet --label empathy --out runs/scorer/study folds=5",
    "tidekit score -g runs/gen --references runs/data --out runs/scores --scorer runs/scorer/epitome"))
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="CSV, JSONL or Parquet with id, context, response and the label columns, or a "
                   "'tidekit rate export' file (averaged per reply, raters as weights). See docs/scoring.md.")
@click.option("--label", "label", multiple=True, help="A label column to learn (repeatable).")
@click.option("--group", default=None, help="Column kept whole across folds (seeker post, persona) "
                                           "[default: rows with the same context; a rating export: the persona].")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="The scorer folder to write.")
@click.option("--name", default=None, help="Name in score columns, scorer_<name>_<label> [default: OUT's name].")
@click.option("--encoder", default=None, help="Encoder to fine-tune: alias or local folder [minilm-l6].")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="A scorer-train config YAML (docs/config.md, ScorerTrainConfig).")
@click.option("--seed", type=int, default=None, help="Seed of the folds and the fit [default: 0].")
@progress_option
@json_option("the ScorerTrainResult (labels, n, folds, CV Spearman/Kendall per label, warnings)")
@overrides_argument
def train_cmd(labels: Path | None, label: tuple[str, ...], group: str | None, out: Path, name: str | None,
              encoder: str | None, config_path: Path | None, seed: int | None, progress: bool, as_json: bool,
              overrides: tuple[str, ...]) -> None:
    """Fine-tune a small encoder (default all-MiniLM-L6-v2, CPU or CUDA) to predict human labels
    of (context, reply) pairs: grouped k-fold cross-validation (no group in two folds) for the
    model card's figures, then a final fit on every pair. Writes OUT/ with the weights, the label
    scales, card.md, calibration.png, cv_predictions.csv and manifest.json. A rerun resumes:
    finished folds are kept, and a finished scorer is not retrained.
    """
    from tidekit._config import load_config
    from tidekit.scorer import ScorerTrainConfig, train_scorer

    flags: dict[str, object] = {"labels": str(labels) if labels else None, "label": list(label) or None,
                                "group": group, "name": name, "encoder": encoder, "seed": seed}
    config = load_config(ScorerTrainConfig, config_path, overrides, flags=flags)
    with stdout_to_stderr(as_json):
        result = train_scorer(config, out=out, progress=progress)
    if as_json:
        echo_json(result)
        return
    console = stdout_console()
    state = "already trained with this config and data" if result.skipped else f"trained in {result.train_seconds:.0f} s"
    console.print(f"scorer {result.name!r} ({', '.join(result.labels)}) {state} -> {result.out}")
    console.print(f"{result.n_rows} pairs in {result.n_groups} groups; {result.folds}-fold grouped cross-validation:")
    for a in result.cv:
        if a.spearman is None:
            console.print(f"  {a.label}: undefined ({a.undefined_reason})")
        else:
            console.print(f"  {a.label}: Spearman {a.spearman:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}], "
                          f"Kendall {a.kendall:.3f}, n={a.n}")
    for warning in result.warnings:
        stderr_console().print(f"[bold yellow]warning:[/] {warning}", markup=True, highlight=False)


@scorer_group.command("epitome", **example(
    "tidekit scorer epitome path/to/Empathy-Mental-Health/dataset --out epitome_labels.csv"))
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="The labels file to write (.csv, or .parquet).")
@json_option("{rows, out}: the labelled pairs written and the file")
def epitome_cmd(folder: Path, out: Path, as_json: bool) -> None:
    """Join EPITOME's three annotation files (emotional reactions, interpretations, explorations;
    not shipped: academic licence) into one labels file with er, ip, ex (0-2) and total, one row
    per (seeker post, reply), grouped by seeker_id. Then: tidekit scorer train --labels OUT
    --label er --label ip --label ex --label total --group seeker_id --out DIR.
    """
    from tidekit.scorer import epitome_labels

    rows = epitome_labels(folder, out)
    if as_json:
        echo_json({"rows": rows, "out": str(out)})
        return
    stdout_console().print(f"{rows} labelled pairs -> {out}")


COMMANDS = [scorer_group]
