"""``tidekit finetune``: LoRA / QLoRA fine-tuning, adapter merging and the ceiling analysis.

``tidekit finetune CONFIG`` is short for ``tidekit finetune train CONFIG``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from tidekit.errors import ConfigError

__all__ = ["COMMANDS"]


class _TrainByDefault(click.Group):
    """A group whose first argument, when it is not a sub-command, is the config of ``train``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["train", *args]
        return super().parse_args(ctx, args)


@click.group("finetune", cls=_TrainByDefault, **example(
    "tidekit finetune configs/finetune-smollm2.yaml",
    "tidekit finetune configs/finetune-smollm2.yaml train.max_steps=200 --resume",
    "tidekit finetune merge runs/finetune/smollm2-135m --out runs/merged/smollm2-135m",
    "tidekit finetune ceiling runs/study/scores --out runs/study/ceiling"))
def finetune_group() -> None:
    """Fine-tune a small chat model on supporter replies with LoRA (QLoRA on CUDA), merge
    adapters into full weights, and analyse the fine-tuning gain against model size.

    tidekit is research software, not therapy: fine-tuned models are for evaluation.
    """


@finetune_group.command("train", **example(
    "tidekit finetune configs/finetune-smollm2.yaml",
    "tidekit finetune train configs/finetune-smollm2.yaml lora.rank=8 train.learning_rate=1e-4",
    "tidekit finetune configs/finetune-smollm2.yaml --resume"))
@click.argument("config", type=click.Path(path_type=Path))
@overrides_argument
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder (overrides 'out').")
@click.option("--if-exists", "if_exists", type=click.Choice(["error", "resume", "replace"]), default=None,
              help="What to do with what OUT holds: error (default), resume an unfinished run, or replace it.")
@click.option("--resume", is_flag=True, help="Short for --if-exists resume: continue an interrupted run from its "
                                             "newest checkpoint.")
@click.option("--force", is_flag=True, help="Short for --if-exists replace: discard what OUT holds (adapter, "
                                            "checkpoints, metrics) and start over, once the preflight checks pass.")
@progress_option
@json_option("the FinetuneResult (steps, losses before/after, tokens/s, skipped)")
def train_cmd(config: Path, overrides: tuple[str, ...], out: Path | None, if_exists: str | None, resume: bool,
              force: bool, progress: bool, as_json: bool) -> None:
    """Train a LoRA adapter as CONFIG says (YAML; KEY=VALUE overrides, dotted for nested keys).

    Loss is on supporter replies only. Writes the adapter, tokenizer, README.md (model card),
    metrics.jsonl, manifest.json and checkpoints/ to OUT; rerunning a finished run does nothing.
    """
    from tidekit._config import load_config
    from tidekit.finetuning import FinetuneConfig, finetune

    chosen = [m for m, on in (("resume", resume), ("replace", force), (if_exists or "", if_exists is not None)) if on]
    if len(set(chosen)) > 1:
        raise ConfigError(f"--resume, --force and --if-exists contradict each other ({', '.join(chosen)}); give one")
    flags = {"out": out, "if_exists": chosen[0] if chosen else None, "progress": False if not progress else None}
    cfg = load_config(FinetuneConfig, config, overrides, flags=flags)
    with stdout_to_stderr(as_json):  # the trainer prints its log lines when there is no progress bar
        result = finetune(cfg)
    if as_json:
        echo_json(result)
        return
    console = stdout_console()
    if result.skipped:
        console.print(f"{result.out} already holds this finished run ({result.steps} steps); nothing to do. "
                      "Use --force to train again.")
        return
    console.print(f"[bold]trained[/bold] {result.base_model}: {result.steps} steps on {result.train_examples} "
                  f"examples ({result.device}, {result.precision})"
                  + (f", resumed from step {result.resumed_from_step}" if result.resumed_from_step else ""))
    console.print(f"training loss {_fmt(result.first_train_loss)} -> {_fmt(result.last_train_loss)}; validation "
                  f"loss {_fmt(result.eval_loss_before)} -> {_fmt(result.eval_loss_after)}; "
                  f"{_fmt(result.tokens_per_s)} tokens/s")
    console.print(f"adapter, tokenizer and model card in {result.out}; use it with "
                  f"'tidekit generate ... --adapter {result.out}'")


@finetune_group.command("merge", **example(
    "tidekit finetune merge runs/finetune/smollm2-135m --out runs/merged/smollm2-135m",
    "tidekit finetune merge ADAPTER --out merged/ --base path/to/base --dtype bfloat16"))
@click.argument("adapter", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the merged model.")
@click.option("--base", default=None, help="Base model alias or folder [default: the one the adapter was trained on].")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="dtype of the saved weights; auto keeps the base checkpoint's.")
@click.option("--force", is_flag=True, help="Replace a different merged model already in OUT.")
@json_option("the MergeResult (out, base model, parameters, dtype, skipped)")
def merge_cmd(adapter: Path, out: Path, base: str | None, dtype: str, force: bool, as_json: bool) -> None:
    """Merge the LoRA ADAPTER into its base model and save full weights that plain transformers
    (and vLLM) load, with the tokenizer, a model card and a manifest."""
    from tidekit.finetuning import merge_adapter

    with stdout_to_stderr(as_json):
        result = merge_adapter(adapter, out, base=base, dtype=dtype, force=force)  # type: ignore[arg-type]
    if as_json:
        echo_json(result)
        return
    verb = "already merged in" if result.skipped else "merged into"
    stdout_console().print(f"{result.adapter} + {result.base_model} {verb} {result.out} "
                           f"({result.parameters / 1e6:.1f}M parameters, {result.dtype})")


@finetune_group.command("ceiling", **example(
    "tidekit finetune ceiling runs/study/scores --out runs/study/ceiling",
    "tidekit finetune ceiling scores.parquet --out ceiling/ --metric cosine --metric rouge_l "
    "--params my-model=1.1"))
@click.argument("scores", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for tables and plots.")
@click.option("--metric", "metrics", multiple=True, help="Metric column (repeatable) [default: every float column].")
@click.option("--params", "params", multiple=True, metavar="MODEL=BILLIONS",
              help="Parameter count of a model not in the registry (repeatable).")
@click.option("--n-boot", type=click.IntRange(min=1), default=2000, show_default=True, help="Persona resamples.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@json_option("the CeilingResult (gains, slopes, settings) and the files written")
def ceiling_cmd(scores: Path, out: Path, metrics: tuple[str, ...], params: tuple[str, ...], n_boot: int,
                confidence: float, seed: int, as_json: bool) -> None:
    """Fine-tuning gain (fine_tuned minus zero_shot, paired by conversation) per metric and scenario
    against log10 parameter count: slope with a persona-bootstrap CI and a model-level OLS CI,
    gains.csv, slopes.csv, and plots (PNG + SVG).

    SCORES is scores.parquet (or a folder holding it) from 'tidekit score' with both conditions.
    """
    from tidekit.analysis import ceiling_analysis

    sizes: dict[str, float] = {}
    for item in params:
        name, sep, value = item.rpartition("=")
        try:
            sizes[name] = float(value)
        except ValueError:
            name = ""
        if not sep or not name:
            raise ConfigError(f"--params {item!r}: expected MODEL=BILLIONS, e.g. my-model=1.1")
    with stdout_to_stderr(as_json):
        result = ceiling_analysis(scores, metrics=list(metrics) or None, params=sizes or None, n_boot=n_boot,
                                  confidence=confidence, seed=seed)
        files = result.write(out, source=str(scores))
    if as_json:
        echo_json({**result.model_dump(mode="json"), "files": [str(f) for f in files]})
        return
    _render_slopes(result)
    stdout_console().print(f"wrote {len(files)} files to {out}")


def _render_slopes(result: Any) -> None:
    from rich.table import Table

    table = Table("metric", "slope per 10x params", f"{result.settings['confidence']:.0%} CI (persona bootstrap)",
                  "model-level OLS CI", "p", "models", title="Fine-tuning gain vs log10 parameters",
                  title_justify="left")
    for row in (r for r in result.slopes if r.scenario == "all"):
        table.add_row(row.metric, _fmt(row.slope), f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]",
                      f"[{_fmt(row.ols_ci_low)}, {_fmt(row.ols_ci_high)}]", _fmt(row.ols_p), str(row.n_models))
    stdout_console().print(table)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


COMMANDS = [finetune_group]
