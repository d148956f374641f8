"""The committed CLI and configuration references match what the code generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidekit._refdocs import cli_reference, config_reference

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize(("name", "render"), [("cli.md", cli_reference), ("config.md", config_reference)])
def test_reference_docs_are_current(name: str, render: object) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == render() + "\n", f"docs/{name} is stale: run 'make docs'"  # type: ignore[operator]


def test_every_command_is_in_the_cli_reference() -> None:
    text = cli_reference()
    for verb in ("data validate", "personas", "build", "generate", "serve", "finetune", "score",
                 "rate serve", "analyze", "report", "run"):
        assert f"## `tidekit {verb}`" in text
