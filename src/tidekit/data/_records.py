"""Read and write tidekit's record layout: ``personas`` and ``conversations`` as JSONL or Parquet.

A record folder holds ``personas.jsonl`` and ``conversations.jsonl`` (or the ``.parquet``
pair). Each JSONL line is one record with its ``schema_version``. In Parquet, scalar fields are
native columns (so the table is easy to query) and nested fields are JSON text columns, listed in
the file's metadata under ``tidekit.json_columns``; reading restores identical records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from tidekit._io import atomic_path, atomic_write
from tidekit.data._problems import Problems
from tidekit.data._schema import SCHEMA_VERSION, Conversation, Dataset, Persona

__all__ = ["RecordFormat", "read_records", "record_files", "write_records"]

RecordFormat = Literal["jsonl", "parquet"]
_JSON_COLUMNS_KEY = b"tidekit.json_columns"
MAX_LINE_CHARS = 1_000_000


def record_files(folder: Path, fmt: RecordFormat) -> tuple[Path, Path]:
    return folder / f"personas.{fmt}", folder / f"conversations.{fmt}"


def _rows_jsonl(path: Path, problems: Problems) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        problems.add(path, f"not valid UTF-8 (bad byte 0x{raw[exc.start]:02x})", where=f"line {bad_line}",
                     hint="re-save the file as UTF-8")
        return rows
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            problems.add(path, f"line is {len(line):,} characters long, over the {MAX_LINE_CHARS:,} limit",
                         where=f"line {lineno}", hint="each line must hold one record")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(path, f"malformed JSON: {exc.msg}", where=f"line {lineno}, column {exc.colno}",
                         hint="each line must be one complete JSON object")
            continue
        if not isinstance(obj, dict):
            problems.add(path, f"expected a JSON object, got {type(obj).__name__}", where=f"line {lineno}")
            continue
        rows.append((f"line {lineno}", obj))
    return rows


def _rows_parquet(path: Path, problems: Problems) -> list[tuple[str, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        problems.add(path, f"not a readable Parquet file: {exc}", hint="rewrite it with 'tidekit data convert'")
        return []
    meta = table.schema.metadata or {}
    json_cols = set(json.loads(meta.get(_JSON_COLUMNS_KEY, b"[]")))
    rows = []
    for i, row in enumerate(table.to_pylist()):
        for col in json_cols & row.keys():
            if row[col] is not None:
                try:
                    row[col] = json.loads(row[col])
                except (TypeError, json.JSONDecodeError):
                    problems.add(path, "column holds invalid JSON text", where=f"row {i}", field=col)
        rows.append((f"row {i}", {k: v for k, v in row.items() if v is not None or k not in json_cols}))
    return rows


def read_records(folder: str | Path, fmt: RecordFormat, problems: Problems | None = None) -> Dataset:
    """Read a record folder of the given format. Problems are added to ``problems`` (raised if None)."""
    folder = Path(folder)
    own = problems is None
    problems = problems if problems is not None else Problems()
    reader = _rows_jsonl if fmt == "jsonl" else _rows_parquet
    personas_path, convs_path = record_files(folder, fmt)
    parsed: dict[str, list[Any]] = {"personas": [], "conversations": []}
    for kind, path, model in (("personas", personas_path, Persona), ("conversations", convs_path, Conversation)):
        if not path.is_file():
            problems.add(path, f"missing {kind} file", hint=f"write {path.name} beside the other file")
            continue
        for where, obj in reader(path, problems):
            version = obj.get("schema_version", SCHEMA_VERSION)
            if version != SCHEMA_VERSION:
                problems.add(path, f"schema_version {version} is not supported (this tidekit reads {SCHEMA_VERSION})",
                             where=where, field="schema_version", hint="convert it with a matching tidekit")
                continue
            try:
                parsed[kind].append(model.model_validate(obj))
            except ValidationError as exc:
                problems.add_validation(path, exc, where_prefix=where)
    dataset = Dataset(personas=parsed["personas"], conversations=parsed["conversations"], source=str(folder))
    if own:
        problems.raise_if_errors(folder)
    return dataset


def _write_jsonl(path: Path, records: list[BaseModel]) -> None:
    with atomic_write(path) as fh:
        for r in records:
            fh.write(r.model_dump_json() + "\n")


def _write_parquet(path: Path, records: list[BaseModel], model: type[BaseModel]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    dumped = [r.model_dump(mode="json") for r in records]
    columns = list(model.model_fields)
    json_cols = [c for c in columns if any(isinstance(d.get(c), dict | list) for d in dumped)
                 or _is_nested(model, c)]
    data = {c: [json.dumps(d[c], ensure_ascii=False) if c in json_cols else d[c] for d in dumped] for c in columns}
    table = pa.table(data).replace_schema_metadata({_JSON_COLUMNS_KEY: json.dumps(json_cols).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _is_nested(model: type[BaseModel], field: str) -> bool:
    annotation = str(model.model_fields[field].annotation)
    return any(t in annotation for t in ("list", "dict", "Provenance", "Turn"))


def write_records(dataset: Dataset, folder: str | Path, fmt: RecordFormat) -> None:
    """Write ``dataset`` as a record folder (each file atomically)."""
    personas_path, convs_path = record_files(Path(folder), fmt)
    if fmt == "jsonl":
        _write_jsonl(personas_path, list(dataset.personas))
        _write_jsonl(convs_path, list(dataset.conversations))
    else:
        _write_parquet(personas_path, list(dataset.personas), Persona)
        _write_parquet(convs_path, list(dataset.conversations), Conversation)
