"""``tidekit run``: the whole study from one config."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from tidekit.cli._common import (
    echo_json,
    example,
    overrides_argument,
    progress_option,
    stdout_console,
)

__all__ = ["COMMANDS", "shipped_config", "shipped_configs_dir"]


def shipped_configs_dir() -> Path:
    """Where the wheel installs the example configs: ``<prefix>/share/tidekit/configs``."""
    import sysconfig

    return Path(sysconfig.get_path("data")) / "share" / "tidekit" / "configs"


def shipped_config(study: Path, shipped: Path | None = None) -> Path:
    """``study`` itself when it exists, else the shipped example config of that name, if any."""
    if study.exists():
        return study
    folder = shipped or shipped_configs_dir()
    for candidate in (folder / study.name, folder / f"{study.name}.yaml"):
        if candidate.is_file():
            return candidate
    return study  # the config loader says it is missing


@click.command("run", **example("tidekit run configs/quickstart.yaml",
                                "tidekit run configs/tide-paper.yaml --dry-run",
                                "tidekit run configs/quickstart.yaml analysis.alpha=0.01 --from analysis"))
@click.argument("study", type=click.Path(path_type=Path))
@overrides_argument
@click.option("--from", "from_stage", metavar="STAGE", help="Rerun this stage and everything after it.")
@click.option("--only", metavar="STAGE", help="Run only this stage (its inputs must be up to date).")
@click.option("--dry-run", is_flag=True, help="Print the plan and the scale of the work; run nothing.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder [the config's 'out'].")
@click.option("--json", "as_json", is_flag=True, help="Print the plan or result as JSON.")
@progress_option
def run_cmd(study: Path, overrides: tuple[str, ...], from_stage: str | None, only: str | None,
            dry_run: bool, out: Path | None, as_json: bool, progress: bool) -> None:
    """Run a study: dataset, split, fine-tuning, generation, scoring, ratings, analysis, report.

    Each stage writes a subfolder of the run folder. A rerun skips finished stages whose
    settings and inputs are unchanged; editing one section reruns that stage and those after
    it. A killed run resumes where it stopped. Stage names: dataset, split,
    finetune:<model>, generate:<model>:<condition>, score, ceiling, judge_validation, rating,
    analysis, report. Every stage seed the config does not set derives from its master 'seed'
    (--dry-run shows them).

    STUDY may also name an example config shipped with tidekit (quickstart, tide-paper,
    tide-500x20; with or without .yaml, or configs/NAME.yaml) when no such file exists here, so
    the README's commands work after 'pip install tidekit' outside the repository.
    """
    from tidekit.study import load_study, plan_study, run_study

    cfg = load_study(shipped_config(study), overrides, out=out)
    console = stdout_console()
    if dry_run:
        plan = plan_study(cfg, from_stage=from_stage, only=only)
        if as_json:
            echo_json(plan)
            return
        console.print(f"[bold]{cfg.name}[/bold] -> {plan.out}")
        console.print(f"personas {plan.personas:,}, conversations {plan.conversations:,}, evaluated on "
                      f"{plan.eval_conversations:,} ({cfg.generation.split} split)")
        console.print(f"systems: {plan.models} models x {len(plan.conditions)} conditions "
                      f"({', '.join(plan.conditions)}) = {len(plan.systems)} systems")
        calls = ", ".join(f"{k} {v:,}" for k, v in plan.model_calls.items())
        total, most = sum(plan.model_calls.values()), sum(plan.model_calls_max.values())
        console.print(f"model calls: {calls}; total {total:,}" + (f" (up to {most:,} with regenerations)"
                      if most > total else ""))
        console.print(f"generated tokens: at most {plan.generated_tokens_max:,}")
        if plan.rated_subset is not None:
            console.print(plan.rated_subset.summary)
        hours = [s.est_hours for s in plan.stages if s.est_hours is not None]
        unmeasured = sum(1 for s in plan.stages if s.rate_source is not None and s.est_hours is None)
        if hours or unmeasured:
            console.print(f"generation time from measured rates: ~{_duration(sum(hours))} for {len(hours)} stage(s)"
                          + (f"; {unmeasured} stage(s) with no measured rate for their engine, device and model "
                             "(measure with benchmarks/generation.py)" if unmeasured else ""))
        for s in plan.stages:
            extra = "".join(f", {k} {v}" for k, v in (("engine", s.engine), ("seed", s.seed)) if v is not None)
            if s.est_hours is not None:
                extra += f", ~{_duration(s.est_hours)} at a measured {s.rate_tok_s or 0:.0f} tok/s"
            elif s.rate_source is not None:
                extra += ", time: no measured rate"
            console.print(f"  {'run ' if s.status == 'planned' else 'skip'}  {s.name}"
                          + (f"  [dim]({extra[2:]})[/dim]" if extra else ""))
        return

    from tidekit.cli._common import stderr_console

    if as_json:  # stdout carries only the JSON; progress goes to stderr
        console = stderr_console()
    names: list[str] = []
    started: dict[str, float] = {}
    t_start = time.perf_counter()

    def on_event(event: str, stage: Any, outcome: Any) -> None:
        if event == "start":
            names.append(stage.name)
            started[stage.name] = time.perf_counter()
            console.print(f"[bold cyan]>> {stage.name}[/bold cyan]")
        elif event == "skipped":
            console.print(f"[dim]-- {stage.name}: up to date, skipped[/dim]")
        elif event == "done":
            facts = outcome.facts.summary()
            console.print(f"[green]ok {stage.name}[/green] in {outcome.wall_s:.1f} s" + (f" ({facts})" if facts else ""))

    result = run_study(cfg, from_stage=from_stage, only=only, progress=progress, on_event=on_event)
    if as_json:
        echo_json(result)
        return
    ran = sum(1 for s in result.stages if s.status == "ran")
    console.print(f"done in {time.perf_counter() - t_start:.1f} s: {ran} stage(s) ran, "
                  f"{len(result.stages) - ran} up to date. Run folder: {result.out}")
    if result.report:
        console.print(f"report: {result.report}")


def _duration(hours: float) -> str:
    return f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.1f} min"


COMMANDS = [run_cmd]
