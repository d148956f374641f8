"""``tidekit personas``: sample clinically consistent personas and report their fit to the targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tidekit.cli._common import echo_json, example, overrides_argument, stdout_console

__all__ = ["COMMANDS"]


def _config_data(path: Path | None) -> dict[str, Any]:
    """A persona config file, or the ``personas:`` section of a build config."""
    from tidekit._config import read_yaml

    if path is None:
        return {}
    data = read_yaml(path)
    section = data.get("personas")
    return dict(section) if isinstance(section, dict) else data


@click.command("personas", **example(
    "tidekit personas --n 500 --seed 7 --out runs/personas/personas.jsonl",
    "tidekit personas --config configs/tide-500x20.yaml --out runs/personas/p.jsonl facets.gender.male=0.5 "
    "facets.gender.female=0.45 facets.gender.non_binary=0.05"))
@click.option("--n", "n", type=int, default=None, help="Number of personas [default: config's, else 500].")
@click.option("--seed", type=int, default=None, help="Random seed [default: config's, else 0].")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="Personas file to write (JSONL); manifest.json with the fit report lands beside it.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML with persona settings, or a build config (its 'personas:' section is used).")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="Family-wise significance level of the goodness-of-fit tests (Bonferroni).")
@click.option("--json", "as_json", is_flag=True, help="Print the fit report as JSON.")
@overrides_argument
def personas_cmd(n: int | None, seed: int | None, out: Path, config_path: Path | None, alpha: float,
                 as_json: bool, overrides: tuple[str, ...]) -> None:
    """Sample distinct, clinically consistent PTSD client personas (synthetic, not real people).

    Facets and their target distributions come from the packaged facets.yaml and clinical.yaml
    (or your copies); KEY=VALUE overrides change any persona setting, e.g. a facet's targets.
    The manifest compares realised with target distributions, with a chi-square test per facet
    and a Kolmogorov-Smirnov test for age.
    """
    from tidekit._config import load_config
    from tidekit.personas import PersonaConfig, write_persona_file

    extra = [*([f"n={n}"] if n is not None else []), *([f"seed={seed}"] if seed is not None else [])]
    defaults = _config_data(config_path)
    config = load_config(PersonaConfig, None, [*overrides, *extra], defaults=defaults)
    run = write_persona_file(config, out, alpha=alpha)
    if as_json:
        echo_json(run)
        return
    from rich.table import Table

    console = stdout_console()
    table = Table("facet", "source", "test", "statistic", "dof", "p", "fit", title="Realised vs target",
                  title_justify="left")
    for f in run.fit.facets:
        table.add_row(f.facet, f.source, "chi-square", f"{f.statistic:.2f}" if f.statistic is not None else "-",
                      str(f.dof), f"{f.p_value:.3f}" if f.p_value is not None else "-",
                      "[green]ok[/green]" if f.passed else "[red]off[/red]")
    age = run.fit.age
    table.add_row("age", "paper", "KS", f"{age.statistic:.3f}", "-", f"{age.p_value:.3f}",
                  "[green]ok[/green]" if age.passed else "[red]off[/red]")
    console.print(table)
    console.print(f"mean age {age.mean} (target {age.target_mean}); constraint violations: "
                  f"{run.fit.constraint_violations}; duplicates: {run.fit.duplicates}")
    verdict = ("[green]every facet fits its target[/green]" if run.fit.passed else
               "[yellow]warning: some facets do not fit their targets (see manifest.json)[/yellow]")
    console.print(f"wrote {run.n} personas to {run.path} in {run.sample_s:.2f} s; {verdict}")


COMMANDS = [personas_cmd]
