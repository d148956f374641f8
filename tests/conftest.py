"""Shared test set-up: no network, helpers to run the CLI in-process."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``tidekit ARGS`` in this process; returns exit code, stdout and stderr."""
    from tidekit.cli import main

    def _run(*args: str | Path) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


@pytest.fixture
def sample_dir() -> Path:
    from tidekit.data import sample_path

    return sample_path()


def require_tool(name: str) -> str:
    """Path of an executable; skip where it is missing, but fail in CI (which installs it)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (make sysdeps installs it)")
        pytest.skip(f"{name} is not installed (run 'make sysdeps')")
    return path
