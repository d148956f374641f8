"""Problems found in input data, collected rather than raised one at a time.

Readers add a :class:`Problem` for every defect they meet and carry on, so ``tidekit data
validate`` can report all of them at once. Each problem names the file, where in it (line,
row or JSON path), the field, what is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from tidekit.errors import DataError

__all__ = ["Problem", "Problems"]

Severity = Literal["error", "warning"]


class Problem(BaseModel):
    """One defect in the input."""

    severity: Severity
    file: str
    where: str | None = None  # "line 3", "row 7", "conversations[2].person"
    field: str | None = None
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        loc = self.file + (f": {self.where}" if self.where else "")
        field = f" [{self.field}]" if self.field else ""
        hint = f" Fix: {self.hint}" if self.hint else ""
        return f"{self.severity}: {loc}{field}: {self.message}.{hint}"


class Problems:
    """An ordered collection of problems."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(
        self,
        file: str | Path,
        message: str,
        *,
        where: str | None = None,
        field: str | None = None,
        hint: str | None = None,
        severity: Severity = "error",
    ) -> None:
        self.items.append(
            Problem(severity=severity, file=str(file), where=where, field=field, message=message, hint=hint)
        )

    def warn(self, file: str | Path, message: str, **kw: str | None) -> None:
        self.add(file, message, severity="warning", **kw)

    def add_validation(self, file: str | Path, exc: ValidationError, where_prefix: str = "") -> None:
        """Record each pydantic error as a problem naming the field path."""
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            sep = ", " if where_prefix.startswith(("line ", "row ")) else "."
            where = f"{where_prefix}{sep}{loc}" if where_prefix and loc else (where_prefix or loc or None)
            msg = err["msg"].removeprefix("Value error, ")
            hint = _hint_for(err["type"])
            if err["type"] == "value_error" and "empty" not in msg:
                hint = None
            self.add(file, msg, where=where, field=str(err["loc"][-1]) if err["loc"] else None, hint=hint)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_errors(self, path: str | Path, limit: int = 20) -> None:
        """Raise one DataError listing the first ``limit`` errors and how many more there are."""
        errors = self.errors
        if not errors:
            return
        shown = "\n  ".join(str(p) for p in errors[:limit])
        more = f"\n  ... and {len(errors) - limit} more" if len(errors) > limit else ""
        raise DataError(
            f"{len(errors)} problem(s) in {path}:\n  {shown}{more}\n"
            f"Run 'tidekit data validate {path}' for the full report."
        )


def _hint_for(error_type: str) -> str | None:
    return {
        "missing": "add the field",
        "string_type": "make the value a JSON string",
        "int_parsing": "make the value a whole number",
        "int_type": "make the value a whole number",
        "list_type": "make the value a JSON list",
        "dict_type": "make the value a JSON object",
        "literal_error": "use one of the allowed values",
        "extra_forbidden": "remove the field or move it under 'extra'/'attributes'",
        "value_error": "write a non-empty value",
        "too_short": "add at least one item",
        "greater_than_equal": "use a value in range",
        "less_than_equal": "use a value in range",
    }.get(error_type)
