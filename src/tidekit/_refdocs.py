"""Generate the reference docs from the code, so they cannot drift from it.

``docs/cli.md`` is every verb's ``--help``; ``docs/config.md`` is every configuration model's
fields (type, default, description). ``make docs`` rewrites both; a test fails when the
committed files differ from what the code generates.

Run it with::

    python -m tidekit._refdocs          # rewrite docs/cli.md and docs/config.md
    python -m tidekit._refdocs --check  # exit 1 if they are stale
"""

from __future__ import annotations

import importlib
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ["cli_reference", "config_reference", "main"]

# (title, "module:Class") of the configs a user writes, in pipeline order
CONFIG_MODELS = [
    ("Study (`tidekit run STUDY.yaml`)", "tidekit.study._config:StudyConfig"),
    ("Dataset build (`tidekit build CONFIG`)", "tidekit.builder._config:BuildConfig"),
    ("Personas (`tidekit personas --config`)", "tidekit.personas._spec:PersonaConfig"),
    ("Backend (any `backend:` / `teacher:` entry)", "tidekit.backends._protocol:BackendConfig"),
    ("Decoding (`params:`, `client:`, `supporter:`)", "tidekit.backends._protocol:GenerationParams"),
    ("Generation (`tidekit generate`)", "tidekit.generation._dataset:GenerateConfig"),
    ("Fine-tuning (`tidekit finetune CONFIG`)", "tidekit.finetuning._config:FinetuneConfig"),
    ("Scoring (`tidekit score --config`)", "tidekit.metrics._config:ScoreConfig"),
    ("Learned scorer training (`tidekit scorer train --config`)", "tidekit.scorer._config:ScorerTrainConfig"),
    ("Rating study (`tidekit rate create --config`)", "tidekit.rating._config:RatingStudyConfig"),
    ("Simulated raters (`rating.rater_model`)", "tidekit.rating._simulate:RaterModel"),
    ("Analysis (`tidekit analyze --config`)", "tidekit.analysis._config:AnalysisConfig"),
    ("Report (`tidekit report`)", "tidekit.reporting._config:ReportConfig"),
]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name in sorted(group.commands):
        command = group.commands[name]
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def cli_reference() -> str:
    """Markdown of every command's --help, in a stable width."""
    from tidekit.cli import cli

    lines = ["# CLI reference", "", "Generated from the code by `make docs` (`python -m tidekit._refdocs`);",
             "a test fails when this file is stale. Do not edit by hand.", ""]
    entries: list[tuple[tuple[str, ...], click.Command]] = [((), cli), *_commands(cli)]
    width: dict[str, Any] = {"max_content_width": 100, "terminal_width": 100}
    for path, command in entries:
        name = " ".join(("tidekit", *path))
        # make_context applies each command's context_settings (e.g. -h as a help option), as
        # a real invocation does; resilient parsing ignores missing required arguments
        ctx = cli.make_context("tidekit", [], resilient_parsing=True, **width)
        for part in path:
            group = ctx.command
            assert isinstance(group, click.Group)
            ctx = group.commands[part].make_context(part, [], parent=ctx, resilient_parsing=True, **width)
        lines += [f"## `{name}`", "", "```", command.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
    else:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(section)"
    text = repr(value) if not isinstance(value, Path) else repr(str(value))
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}...`"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _model_table(model: type[BaseModel], prefix: str, seen: set[type[BaseModel]], out: list[str]) -> None:
    doc = (model.__doc__ or "").strip().splitlines()
    out += [f"`{prefix or model.__name__}` ({model.__name__}): {doc[0] if doc else ''}", "",
            "| key | type | default | meaning |", "|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
        for sub in _models_in(field.annotation):
            nested.append((f"{prefix}.{name}" if prefix else name, sub))
    out.append("")
    for key, sub in nested:
        if sub not in seen:
            seen.add(sub)
            _model_table(sub, key, seen, out)


def config_reference() -> str:
    """Markdown tables of every configuration model's fields, nested sections included."""
    lines = ["# Configuration reference", "",
             "Generated from the pydantic models by `make docs` (`python -m tidekit._refdocs`); a test",
             "fails when this file is stale. Unknown keys are errors that name the key; every YAML",
             "config takes `key=value` overrides on the command line (dotted keys reach nested sections).", ""]
    for title, target in CONFIG_MODELS:
        module, cls = target.split(":")
        model = getattr(importlib.import_module(module), cls)
        lines += [f"## {title}", ""]
        _model_table(model, "", {model}, lines)
        if target == "tidekit.backends._protocol:BackendConfig":
            lines += _backend_kinds()
    return "\n".join(lines)


def _backend_kinds() -> list[str]:
    """A table per registered backend kind: its own options (beyond kind and model)."""
    from tidekit.backends import BACKENDS, backend_kinds

    lines: list[str] = []
    for kind in backend_kinds():
        options = BACKENDS[kind].options
        lines += [f"### Backend kind `{kind}`", ""]
        _model_table(options, f"kind: {kind}", {options}, lines)
    return lines


def _targets(root: Path) -> dict[Path, str]:
    return {root / "docs" / "cli.md": cli_reference() + "\n", root / "docs" / "config.md": config_reference() + "\n"}


def main(argv: list[str] | None = None) -> int:
    from tidekit._io import write_text

    argv = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[2]
    stale = []
    for path, text in _targets(root).items():
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            stale.append(path)
            if "--check" not in argv:
                write_text(path, text)
    if "--check" in argv and stale:
        print("stale: " + ", ".join(str(p) for p in stale) + " (run 'make docs')", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(p) for p in stale) if stale else "reference docs up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
