"""Labels files: replies with human scores, read for judge validation and for training scorers.

A labels file (CSV, JSONL or Parquet) holds one reply per row: ``id``, ``context`` (what the
person wrote), ``response`` (the reply that was rated) and one or more numeric label columns
(any scale; an empty cell is a missing label). An optional grouping column (``--group``) names
the unit that must never be split between training and test data (a seeker post, a persona);
without one, rows with the same context form a group. An optional ``weight`` column says how many
ratings a row's labels average (1 when absent).

A ``tidekit rate export`` file is a labels file too: it has one row per rating, so its rows are
averaged per reply (``conversation_id`` + ``system``), attention-check items and raters who
failed an attention check are left out, the number of raters becomes the row's ``weight``, and
the persona (or else the conversation) is the group. Its label columns are the rating scales
(``empathy`` and the three factors).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tidekit.data import Problems
from tidekit.errors import DataError

__all__ = ["LabelRow", "load_labels"]

REQUIRED = ("id", "context", "response")
RATING_EXPORT_COLUMNS = ("rater_id", "conversation_id", "system", "is_attention_check")


class LabelRow(BaseModel):
    """One labelled reply."""

    id: str
    context: str
    response: str
    human: dict[str, float | None] = Field(description="Human column -> score (None: missing).")
    weight: float = Field(default=1.0, description="How many ratings the labels average (1 for a plain row).")
    group: str = Field(default="", description="The unit kept whole across folds (the context when not given).")


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from a CSV (header on line 1), JSONL or Parquet file (row numbers from 1)."""
    import csv

    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with open(path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg}); each line must be one "
                                    "object with id, context, response and the label columns") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{line_no}: a JSON object is expected, got {type(row).__name__}")
                rows.append((line_no, row))
        return rows
    if suffix == ".parquet":
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        return [(i, {str(k): v for k, v in row.items()}) for i, row in enumerate(records, 1)]
    if suffix != ".csv":
        raise DataError(f"{path}: labels must be a .csv, .jsonl or .parquet file")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        # line numbers of records (a quoted field may span lines)
        return [(reader.line_num, dict(row)) for row in reader]


def _number(raw: Any) -> float | str | None:
    """A label cell as a float, None when empty, or the reason it is not a finite number."""
    if raw is None or (isinstance(raw, str) and not raw.strip()) or (isinstance(raw, float) and math.isnan(raw)):
        return None
    if isinstance(raw, bool):
        return "a true/false value, not a number"
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return "not a number"
    return value if math.isfinite(value) else "not a finite number"


def _is_rating_export(columns: set[str]) -> bool:
    return all(c in columns for c in RATING_EXPORT_COLUMNS) and "id" not in columns


def _from_rating_export(path: Path, rows: list[tuple[int, dict[str, Any]]],
                        human: Sequence[str]) -> list[tuple[int, dict[str, Any]]]:
    """A rating export's rows averaged per reply, as labels-file rows (with ``weight`` and ``group``)."""
    columns = set().union(*(r.keys() for _, r in rows))
    missing = [c for c in ("context", "response", *human) if c not in columns]
    if missing:
        raise DataError(f"{path}: a rating export without column(s) {', '.join(map(repr, missing))}; "
                        "export again with this tidekit version ('tidekit rate export' writes the context and "
                        "response shown to raters) or name label columns the export has")

    def flag(value: Any) -> bool:
        return value in (True, 1) or str(value).strip().lower() in ("true", "1", "yes")

    replies: dict[tuple[str, str], dict[str, Any]] = {}
    for line, row in rows:
        if flag(row.get("is_attention_check")) or ("attention_passed" in row and not flag(row["attention_passed"])):
            continue
        key = (str(row["conversation_id"]), str(row["system"]))
        reply = replies.setdefault(key, {"line": line, "context": row["context"], "response": row["response"],
                                         "group": str(row.get("persona_id") or row["conversation_id"]),
                                         "raters": set(), "values": {c: [] for c in human}})
        reply["raters"].add(str(row["rater_id"]))
        for c in human:
            value = _number(row.get(c))
            if isinstance(value, str):
                raise DataError(f"{path}: row {line}, field {c!r}: {row.get(c)!r} is {value}; rating scales "
                                "must be numbers")
            if value is not None:
                reply["values"][c].append(value)
    out = []
    for (cid, system), r in replies.items():
        labels = {c: (sum(v) / len(v) if v else None) for c, v in r["values"].items()}
        out.append((r["line"], {"id": f"{cid}|{system}", "context": r["context"], "response": r["response"],
                                "weight": len(r["raters"]), "group": r["group"], **labels}))
    return out


def load_labels(path: str | Path, human: Sequence[str], group: str | None = None) -> list[LabelRow]:
    """The rows of a labels file, checked: every problem reported at once with its file:line and field.

    ``group`` names a column that marks rows to keep together (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such labels file")
    if not human:
        raise DataError("name at least one label column (--human COL / --label COL)")
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows; the file needs id, context, response and {', '.join(human)}")
    columns = set().union(*(r.keys() for _, r in rows))
    if _is_rating_export(columns):
        rows = _from_rating_export(path, rows, human)
        columns = set().union(*(r.keys() for _, r in rows)) if rows else set(REQUIRED) | set(human)
        if not rows:
            raise DataError(f"{path}: the rating export holds no ratings of replies (only attention checks, or "
                            "every rater failed one)")
    missing = [c for c in (*REQUIRED, *human, *([group] if group else [])) if c not in columns]
    if missing:
        raise DataError(f"{path}: no column {', '.join(repr(c) for c in missing)} (columns: "
                        f"{', '.join(sorted(columns))}); the file needs id, context, response and each label column")
    problems = Problems()
    out: list[LabelRow] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        where = f"line {line}"
        values = {c: ("" if row.get(c) is None else str(row.get(c))).strip() for c in REQUIRED}
        for c in REQUIRED:
            if not values[c]:
                problems.add(path, f"empty {c}", where=where, field=c,
                             hint="every row needs an id, the context and the response")
        if values["id"] in seen:
            problems.add(path, f"id {values['id']!r} repeats line {seen[values['id']]}", where=where, field="id",
                         hint="give each reply its own id")
        seen.setdefault(values["id"], line)
        scores: dict[str, float | None] = {}
        for c in human:
            value = _number(row.get(c))
            if isinstance(value, str):
                problems.add(path, f"{c}={row.get(c)!r} is {value}", where=where, field=c,
                             hint="label columns must hold numbers; leave the cell empty for a missing label")
                continue
            scores[c] = value
        weight = _number(row.get("weight"))
        if isinstance(weight, str) or (weight is not None and weight <= 0):
            problems.add(path, f"weight={row.get('weight')!r} is not a positive number", where=where, field="weight",
                         hint="a weight column says how many ratings a row averages; leave it out for 1")
            weight = 1.0
        unit = str(row.get(group) or "").strip() if group else str(row.get("group") or "")
        out.append(LabelRow(id=values["id"], context=values["context"], response=values["response"], human=scores,
                            weight=1.0 if weight is None else weight, group=unit or values["context"]))
    if problems.errors:
        shown = "\n  ".join(str(p) for p in problems.errors[:20])
        more = f"\n  ... and {len(problems.errors) - 20} more" if len(problems.errors) > 20 else ""
        raise DataError(f"{len(problems.errors)} problem(s) in the labels file {path}:\n  {shown}{more}")
    return out
