"""Validate a dataset: every problem at once, and a summary when it is clean."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from tidekit.data._load import SourceFormat, detect_format, read_dataset, resolve_source
from tidekit.data._problems import Problem, Problems
from tidekit.data._summary import DatasetSummary, summarize
from tidekit.errors import DataError

__all__ = ["ValidationReport", "validate_dataset"]


class ValidationReport(BaseModel):
    """The outcome of validating one dataset."""

    path: str
    format: SourceFormat | None
    problems: list[Problem]
    summary: DatasetSummary | None

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def validate_dataset(path: str | Path) -> ValidationReport:
    """Check the dataset at ``path`` (or ``hf://owner/name``); never raises for bad data, it reports it."""
    problems = Problems()
    shown = re.sub(r"^hf:/+", "hf://", str(path))  # Path() keeps one slash of hf://
    try:
        path = resolve_source(path)  # an hf:// id is downloaded once, here
        fmt = detect_format(path)
    except DataError as exc:
        problems.add(shown, str(exc).removeprefix(f"{shown}: ").removeprefix(f"{path}: ").rstrip("."))
        return ValidationReport(path=shown, format=None, problems=problems.items, summary=None)
    dataset = read_dataset(path, problems)
    return ValidationReport(path=str(path), format=fmt, problems=problems.items, summary=summarize(dataset))
