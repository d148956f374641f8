"""Conventions every verb follows: an example in ``--help``, ``key=value`` overrides, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any, TypeVar

import click
from pydantic import BaseModel

__all__ = ["echo_json", "example", "json_option", "overrides_argument", "progress_option", "stderr_console",
           "stdout_console", "stdout_to_stderr"]

F = TypeVar("F", bound=Callable[..., Any])


def example(*lines: str) -> dict[str, Any]:
    """Keyword arguments for ``@click.command`` that put examples in ``--help``."""
    body = "\n\n".join(f"  {line}" for line in lines)
    return {"epilog": f"\b\nExample{'s' if len(lines) > 1 else ''}:\n{body}",
            "context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 100}}


def overrides_argument(func: F) -> F:
    """Trailing ``key=value`` arguments that override the config (dotted keys reach nested ones)."""
    return click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")(func)


def json_option(printed: str) -> Callable[[F], F]:
    """The ``--json`` flag every verb has; ``printed`` names what it prints (see docs/json.md).

    With it, stdout carries exactly one JSON document (progress and warnings go to stderr), so
    ``tidekit VERB ... --json | jq`` works.
    """
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print {printed} as JSON on stdout instead of text (fields: docs/json.md).")


def _set_progress(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """With --no-progress, also silence the bars libraries draw (transformers' weight loading,
    datasets' map, huggingface_hub downloads), so a CI log stays readable."""
    if not value:
        import os

        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:  # transformers is optional for some verbs
            pass
    return value


def progress_option(func: F) -> F:
    """The ``--progress/--no-progress`` switch of every verb that works long (default: on)."""
    return click.option("--progress/--no-progress", "progress", default=True, show_default=True,
                        callback=_set_progress,
                        help="Show progress bars; --no-progress also silences the libraries' bars "
                             "(transformers, datasets).")(func)


@contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """While a ``--json`` verb works, send what libraries print to stdout (the trainer's log
    lines, ...) to stderr, so stdout carries the JSON document alone."""
    if not enabled:
        yield
        return
    with redirect_stdout(sys.stderr):
        yield


def echo_json(obj: BaseModel | dict[str, Any] | list[Any]) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    if isinstance(obj, BaseModel):
        click.echo(obj.model_dump_json(indent=2))
    else:
        click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def stdout_console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)
