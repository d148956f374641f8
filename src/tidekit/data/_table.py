"""One-file tables: a dataset as one row per conversation in a ``.jsonl``, ``.parquet`` or ``.csv`` file.

What ``tidekit data convert SRC out.jsonl`` writes, for ``datasets.load_dataset("json", ...)``,
pandas and jq: the flat row of the ``hf`` layout (:func:`tidekit.data._flat.conversation_row`)
plus ``turns`` (a list of ``{role, text}``) and ``reference``. Types per file kind:

- ``.jsonl``: one JSON object a line, every field in its own JSON type;
- ``.parquet``: ``turns`` a list of structs, ``behaviors`` a list of strings, the free-form
  objects (``persona_attributes``, ``provenance``, ``extra``) JSON text, as in the ``hf`` layout
  (Arrow needs one schema for every row);
- ``.csv``: text cells; ``turns``, ``behaviors`` and the objects as JSON text, an empty cell for
  a missing value.

:func:`read_table` reads all three back into the same personas and conversations.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Literal

from tidekit._io import atomic_path, atomic_write
from tidekit.data._flat import JSON_COLUMNS, conversation_row, dataset_from_rows
from tidekit.data._problems import Problems
from tidekit.data._schema import Dataset

__all__ = ["TABLE_SUFFIXES", "TableKind", "read_table", "table_kind", "write_table"]

TableKind = Literal["jsonl", "parquet", "csv"]
TABLE_SUFFIXES: dict[str, TableKind] = {".jsonl": "jsonl", ".parquet": "parquet", ".csv": "csv"}
# columns that hold lists or objects; in CSV cells they are JSON text
_NESTED = ("turns", "behaviors", *JSON_COLUMNS)


def table_kind(path: str | Path) -> TableKind | None:
    """The table kind a path's suffix names (``.jsonl``, ``.parquet``, ``.csv``), or None."""
    return TABLE_SUFFIXES.get(Path(path).suffix.lower())


def _rows(dataset: Dataset) -> list[dict[str, Any]]:
    personas = dataset.persona_map()
    return [{**conversation_row(conv, personas.get(conv.persona_id)),
             "turns": [{"role": t.role, "text": t.text} for t in conv.turns], "reference": conv.reference}
            for conv in dataset.conversations]


def write_table(dataset: Dataset, path: str | Path) -> Path:
    """Write ``dataset`` to the file ``path`` (atomically), of the kind its suffix names; returns it."""
    path = Path(path)
    kind = table_kind(path)
    if kind is None:
        raise ValueError(f"{path}: not a table file name (.jsonl, .parquet, .csv)")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = _rows(dataset)
    if kind == "jsonl":
        with atomic_write(path) as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif kind == "csv":
        columns = list(rows[0]) if rows else ["conversation_id", "persona_id", "turns", "reference"]
        with atomic_write(path) as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if k in _NESTED else ("" if v is None else v)
                                 for k, v in row.items()})
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for row in rows:
            for col in JSON_COLUMNS:
                row[col] = json.dumps(row[col], ensure_ascii=False)
        table = pa.Table.from_pylist(rows) if rows else pa.table({"conversation_id": pa.array([], pa.string())})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
    return path


def is_table_file(path: Path) -> bool:
    """True if ``path`` is a one-file table: a table suffix and a ``turns`` column."""
    kind = table_kind(path)
    if kind is None or not path.is_file():
        return False
    try:
        if kind == "jsonl":
            with open(path, encoding="utf-8-sig") as fh:
                first = next((line for line in fh if line.strip()), "{}")
            obj = json.loads(first)
            return isinstance(obj, dict) and "turns" in obj and "messages" not in obj
        if kind == "csv":
            with open(path, encoding="utf-8-sig", newline="") as fh:
                return "turns" in next(csv.reader(fh), [])
        import pyarrow.parquet as pq

        return "turns" in pq.read_schema(path).names
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def _csv_cell(value: str, col: str, file: Path, where: str, problems: Problems) -> Any:
    if value == "":
        return None
    if col in _NESTED:
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            problems.add(file, f"cell holds invalid JSON text ({exc.msg})", where=where, field=col,
                         hint="write the list or object as JSON")
            return None
    if col == "age":
        try:
            return int(value)
        except ValueError:
            return value  # the persona model reports it with the field
    return value


def read_table(path: str | Path, problems: Problems) -> Dataset:
    """Personas and conversations from a one-file table; every defect is added to ``problems``."""
    path = Path(path)
    kind = table_kind(path)
    rows: list[tuple[str, dict[str, Any]]] = []
    if kind == "jsonl":
        with open(path, encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    problems.add(path, f"invalid JSON ({exc.msg}, column {exc.colno})", where=f"line {n}",
                                 hint="fix the line or remove it")
                    continue
                if not isinstance(obj, dict):
                    problems.add(path, f"expected a JSON object, got {type(obj).__name__}", where=f"line {n}")
                    continue
                rows.append((f"line {n}", obj))
    elif kind == "csv":
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for n, raw in enumerate(csv.DictReader(fh), start=2):  # line 1 is the header
                where = f"line {n}"
                rows.append((where, {k: _csv_cell(v or "", k, path, where, problems) for k, v in raw.items()
                                     if k is not None}))
    else:
        import pyarrow.parquet as pq

        for n, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            rows.append((f"row {n}", row))
    return dataset_from_rows(rows, path, problems, source=str(path))
