"""One flat row per conversation, with its persona's fields as columns.

The row layout shared by the Hugging Face (``hf``) and chat-``messages`` formats: conversation
fields (``conversation_id``, ``persona_id``, ``scenario_id``, ``scenario``, ``split``), the
persona's typed fields (``age``, ``age_group``, ``gender``, ``trauma_type``, ``behaviors``) and
``persona_attributes``, ``provenance`` and ``extra`` (objects; JSON text in Arrow tables). Rows
read back into personas (one per ``persona_id``, which must agree across its rows) and
conversations; every defect is added to a :class:`Problems` with its row or line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tidekit.data._problems import Problems
from tidekit.data._schema import Conversation, Dataset, Persona

__all__ = ["JSON_COLUMNS", "PERSONA_COLUMNS", "conversation_row", "dataset_from_rows"]

_SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                  "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
PERSONA_COLUMNS = ("age", "age_group", "gender", "trauma_type", "behaviors")
JSON_COLUMNS = ("persona_attributes", "provenance", "extra")


def conversation_row(conv: Conversation, persona: Persona | None, json_text: bool = False) -> dict[str, Any]:
    """The flat row of ``conv`` (without its dialogue: the caller adds turns or messages)."""
    row: dict[str, Any] = {"conversation_id": conv.id, "persona_id": conv.persona_id,
                           "scenario_id": conv.scenario_id, "scenario": conv.scenario, "split": conv.split}
    for field in PERSONA_COLUMNS:
        row[field] = getattr(persona, field) if persona is not None else None
    row["persona_attributes"] = persona.attributes if persona is not None else {}
    row["provenance"] = conv.provenance.model_dump(exclude_none=True)
    row["extra"] = conv.extra
    if json_text:
        for col in JSON_COLUMNS:
            row[col] = json.dumps(row[col], ensure_ascii=False)
    return row


def _json_column(value: Any, file: str | Path, where: str, col: str, problems: Problems) -> Any:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            problems.add(file, f"column holds invalid JSON text ({exc.msg})", where=where, field=col,
                         hint="write a JSON object")
            return None
    if not isinstance(value, dict):
        problems.add(file, f"expected a JSON object, got {type(value).__name__}", where=where, field=col,
                     hint="write a JSON object")
        return None
    return value


def dataset_from_rows(rows: Iterable[tuple[str, dict[str, Any]]], file: str | Path, problems: Problems,
                      source: str | None = None) -> Dataset:
    """Personas and conversations from flat rows that carry ``turns`` and ``reference``.

    ``rows`` yields (location such as 'line 3', row). A row without ``conversation_id`` gets its
    position; one without ``persona_id`` is its own persona (one warning says how many).
    """
    personas: dict[str, tuple[str, dict[str, Any]]] = {}
    conversations: list[Conversation] = []
    unnamed = no_scenario = 0
    for index, (where, row) in enumerate(rows, start=1):
        conv_id = row.get("conversation_id")
        conv_id = str(conv_id) if conv_id not in (None, "") else f"{index:05d}"
        persona_id = row.get("persona_id")
        if persona_id in (None, ""):
            unnamed += 1
            persona_id = conv_id
        persona_id = str(persona_id)
        scenario_id = row.get("scenario_id")
        if scenario_id in (None, ""):
            no_scenario += 1
            scenario_id = "unknown"
        objects = {col: _json_column(row.get(col), file, where, col, problems) for col in JSON_COLUMNS}
        if any(v is None for v in objects.values()):
            continue
        persona = {"id": persona_id, **{f: row.get(f) for f in PERSONA_COLUMNS},
                   "attributes": objects["persona_attributes"]}
        persona["behaviors"] = persona["behaviors"] or []
        if persona_id in personas:
            first_where, first = personas[persona_id]
            for field in (*PERSONA_COLUMNS, "attributes"):
                if persona[field] != first[field]:
                    problems.add(file, f"persona {persona_id!r} has {field}={persona[field]!r} here but "
                                 f"{first[field]!r} at {first_where}", where=where, field=field,
                                 hint="give every row of a persona the same persona fields")
        else:
            personas[persona_id] = (where, persona)
        split = row.get("split")
        if isinstance(split, str):
            split = _SPLIT_ALIASES.get(split.strip().lower(), split)
        record = {"id": conv_id, "persona_id": persona_id, "scenario_id": str(scenario_id),
                  "scenario": row.get("scenario"), "turns": row.get("turns"), "reference": row.get("reference"),
                  "split": split, "provenance": objects["provenance"], "extra": objects["extra"]}
        try:
            conversations.append(Conversation.model_validate(record))
        except ValidationError as exc:
            problems.add_validation(file, exc, where_prefix=where)
    if unnamed:
        problems.warn(file, f"{unnamed} conversation(s) name no persona_id; each is taken as its own persona",
                      field="persona_id", hint="add persona_id so splits keep a persona's conversations together")
    if no_scenario:
        problems.warn(file, f"{no_scenario} conversation(s) name no scenario_id; 'unknown' is used",
                      field="scenario_id")
    out: list[Persona] = []
    for where, fields in personas.values():
        try:
            out.append(Persona.model_validate(fields))
        except ValidationError as exc:
            problems.add_validation(file, exc, where_prefix=where)
    return Dataset(personas=out, conversations=conversations, source=source)
