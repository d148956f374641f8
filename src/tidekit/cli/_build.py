"""``tidekit build``: build a TIDE-style dataset from one config; import a clinician's review."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tidekit.cli._common import (
    echo_json,
    example,
    overrides_argument,
    progress_option,
    stderr_console,
    stdout_console,
)

__all__ = ["COMMANDS"]


class _DefaultRun(click.Group):
    """``tidekit build CONFIG`` means ``tidekit build run CONFIG``; named subcommands still work."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("build", cls=_DefaultRun, **example(
    "tidekit build configs/build-quickstart.yaml",
    "tidekit build configs/tide-500x20.yaml out=runs/tide teacher.batch_size=16",
    "tidekit build import-review runs/quickstart-build reviewed.csv"))
def build() -> None:
    """Build a dataset (persona x scenario -> client message -> reference reply), or import a review.

    'tidekit build CONFIG' is short for 'tidekit build run CONFIG'.
    """


@build.command("run", **example("tidekit build run configs/build-quickstart.yaml",
                                "tidekit build run configs/tide-500x20.yaml --check"))
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Check the config and print the plan; call no model.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder [the config's 'out'].")
@progress_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@overrides_argument
def run_cmd(config_path: Path, check: bool, out: Path | None, progress: bool, as_json: bool,
            overrides: tuple[str, ...]) -> None:
    """Generate, gate and write the dataset CONFIG describes (resumes a killed build from its cache).

    Every config problem (unknown keys, facets or scenarios, target shares not summing to 1,
    constraints that cannot hold) is reported at once, before any model is loaded. Outputs go
    to the config's 'out' folder: tide/, jsonl/, parquet/, DATASET_CARD.md, rejections.md,
    review.csv, manifest.json.
    """
    from tidekit._config import load_config
    from tidekit.builder import BuildConfig, build_dataset, plan_build

    config = load_config(BuildConfig, config_path, overrides, flags={"out": out})
    if check:
        plan = plan_build(config)
        info: dict[str, Any] = {"out": str(config.out), "personas": len(plan.personas),
                                "conversations": plan.conversations, "turns": plan.turns,
                                "teacher": f"{config.teacher.kind}:{config.teacher.model}",
                                "max_requests": plan.turns * (1 + config.regeneration.max_regenerations)}
        if as_json:
            echo_json(info)
        else:
            click.echo("config OK: " + ", ".join(f"{k} {v}" for k, v in info.items()))
        return
    err = stderr_console()
    result = build_dataset(config, out=config.out, progress=progress,
                           on_step=(lambda msg: err.print(f"[dim]{msg}[/dim]")) if progress else None)
    if as_json:
        echo_json(result)
        return
    console = stdout_console()
    s = result.stats
    console.print(f"wrote {result.conversations} conversations ({result.personas} personas) of "
                  f"{result.planned} planned to {result.out}: {result.dropped} dropped, {result.flagged} flagged")
    console.print(f"turns: {s.turns_accepted} accepted, {s.turns_rejected} rejected, {s.turns_flagged} kept "
                  f"flagged; top reasons: " + (", ".join(f"{k} {v}" for k, v in list(s.reasons.items())[:5])
                                               or "none"))
    console.print(f"time: {result.wall_s:.1f} s ({result.load_s:.1f} s loading the teacher, {s.model_s:.1f} s in "
                  f"model calls, {result.overhead_s:.1f} s builder overhead = {100 * result.overhead_share:.1f}%)")
    console.print(f"next: tidekit data validate {result.out}/{next(iter(result.formats), 'jsonl')}")


@build.command("import-review", **example(
    "tidekit build import-review runs/quickstart-build runs/quickstart-build/review.csv",
    "tidekit build import-review runs/build reviewed.csv --out runs/build-reviewed"))
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.argument("sheet", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Folder for the reviewed dataset [default: BUILD_DIR, rewritten in place].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def import_review_cmd(build_dir: Path, sheet: Path, out: Path | None, as_json: bool) -> None:
    """Apply a clinician's accept/reject/edit decisions from SHEET (the build's review.csv, filled in).

    Rejected conversations are removed, edited texts replaced, and each decision recorded in
    the conversation's provenance; the dataset card gains a review section. Every bad row
    (unknown id, unknown decision, edit without text) is reported at once and nothing is written.
    """
    from tidekit.builder import apply_review

    result = apply_review(build_dir, sheet, out)
    if as_json:
        echo_json(result)
        return
    stdout_console().print(f"review applied to {result.out}: {result.accepted} accepted, {result.edited} edited, "
                           f"{result.rejected} rejected (removed), {result.undecided} undecided")


COMMANDS = [build]
