"""The ``tidekit`` command line: one verb per stage, and the one error boundary.

Each verb lives in a ``_<stage>.py`` module here and only parses options, calls the public
function of its stage and renders the result. Domain errors (``tidekit.errors``) become a
one-paragraph message and a non-zero exit; set ``TIDEKIT_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click

from tidekit import __version__
from tidekit.errors import TidekitError

__all__ = ["cli", "main", "run"]

# Modules that define commands; each exposes ``COMMANDS: list[click.Command]``.
COMMAND_MODULES = [
    "tidekit.cli._data",
    "tidekit.cli._personas",
    "tidekit.cli._build",
    "tidekit.cli._score",
    "tidekit.cli._judge",
    "tidekit.cli._scorer",
    "tidekit.cli._rate",
    "tidekit.cli._models",
    "tidekit.cli._generate",
    "tidekit.cli._serve",
    "tidekit.cli._run",
    "tidekit.cli._analyze",
    "tidekit.cli._report",
    "tidekit.cli._finetune",
]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example:\n\n  tidekit data validate path/to/TIDE\n\n"
    "Set TIDEKIT_DEBUG=1 to see tracebacks. tidekit is research software, not therapy.",
)
@click.version_option(__version__, prog_name="tidekit")
def cli() -> None:
    """tidekit: build, evaluate, fine-tune, rate and report trauma-informed empathetic dialogue
    with small language models (a toolkit for the TIDE study)."""


for _name in COMMAND_MODULES:
    for _command in importlib.import_module(_name).COMMANDS:
        cli.add_command(_command)


def _debug() -> bool:
    return os.environ.get("TIDEKIT_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit status (the console script exits with it)."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="tidekit",
                          standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except TidekitError as exc:
        if _debug():
            raise
        click.secho(f"error: {exc}", err=True, fg="red")
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted; finished work is saved and a rerun resumes it.", err=True)
        return 130
    except OSError as exc:
        if _debug():
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        click.secho(f"error: {exc.strerror or exc}{where}", err=True, fg="red")
        return 1
    except Exception as exc:
        if _debug():
            raise
        click.secho(f"internal error: {type(exc).__name__}: {exc}\n"
                    "This is a bug in tidekit. Rerun with TIDEKIT_DEBUG=1 to see the traceback and "
                    "please report it.", err=True, fg="red")
        return 3
    return result if isinstance(result, int) else 0



def run() -> None:
    """Console-script entry point: run the CLI and exit with its status."""
    sys.exit(main())
