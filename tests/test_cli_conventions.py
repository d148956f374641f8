"""CLI conventions: an example in every --help, one error boundary, fast import."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import click
import pytest

from tidekit.cli import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [(), *_commands(cli)], ids=lambda p: " ".join(p) or "tidekit")
def test_every_verb_has_help_with_an_example(path: tuple[str, ...], run_cli: Callable[..., object]) -> None:
    result = run_cli(*path, "--help")
    assert result.code == 0  # type: ignore[attr-defined]
    assert "Example" in result.out and "tidekit " in result.out  # type: ignore[attr-defined]


def test_domain_error_is_clean_and_debug_shows_traceback(tmp_path: object) -> None:
    args = [sys.executable, "-m", "tidekit", "data", "convert", "/nonexistent/dataset", str(tmp_path)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    proc = subprocess.run(args, capture_output=True, text=True, check=False,
                          env={**os.environ, "TIDEKIT_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_usage_error_exit_code(run_cli: Callable[..., object]) -> None:
    result = run_cli("data", "split", "x")  # --out missing
    assert result.code == 2 and "--out" in result.err  # type: ignore[attr-defined]


def test_import_is_fast_and_light() -> None:
    code = ("import sys, time; t=time.perf_counter(); import tidekit, tidekit.data, tidekit.errors; "
            "dt=time.perf_counter()-t; heavy=[m for m in ('torch','transformers','pandas','pyarrow') "
            "if m in sys.modules]; print(dt, heavy)")
    best = min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.split()[0]) for _ in range(3))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]"), out
    # `import tidekit` alone must take under 0.5 s
    assert best < 0.5, best
