"""Chat format: OpenAI/TRL ``messages`` JSONL (both ways); TRL prompt-completion SFT JSONL is
``tidekit.finetuning.write_sft`` (it is built by the fine-tuning example builder).

``messages``: ``messages.jsonl``, one JSON object per conversation::

    {"messages": [{"role": "system", "content": ...},      # only when a system prompt is given
                  {"role": "user", "content": <client turn>},
                  {"role": "assistant", "content": <reference reply>}],
     "conversation_id": ..., "persona_id": ..., "scenario_id": ..., "scenario": ..., "split": ...,
     "age": ..., "age_group": ..., "gender": ..., "trauma_type": ..., "behaviors": [...],
     "persona_attributes": {...}, "provenance": {...}, "extra": {...}}

Client turns are ``user`` messages, supporter turns ``assistant`` ones, and the reference reply is
the last ``assistant`` message (a conversation without a reference ends with ``user``). Reading
drops a leading ``system`` message and gives back the same conversations and personas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tidekit._io import atomic_write
from tidekit.data._flat import conversation_row, dataset_from_rows
from tidekit.data._problems import Problems
from tidekit.data._prompts import conversation_messages
from tidekit.data._records import _rows_jsonl
from tidekit.data._schema import Dataset

__all__ = ["MESSAGES_FILE", "is_messages_file", "messages_path", "read_messages", "write_messages"]

MESSAGES_FILE = "messages.jsonl"
_ROLES = {"user": "client", "human": "client", "assistant": "supporter", "gpt": "supporter"}


def messages_path(path: Path) -> Path | None:
    """The messages file at ``path`` (the file itself, or ``messages.jsonl`` in the folder)."""
    candidate = path / MESSAGES_FILE if path.is_dir() else path
    return candidate if is_messages_file(candidate) else None


def is_messages_file(path: Path) -> bool:
    """True if ``path`` is a JSONL file whose first record has a ``messages`` list."""
    if not path.is_file() or path.suffix != ".jsonl":
        return False
    try:
        with open(path, encoding="utf-8-sig") as fh:
            for line in fh:
                if line.strip():
                    first = json.loads(line)
                    # generations.jsonl records carry messages too, with the model's output
                    return isinstance(first, dict) and isinstance(first.get("messages"), list) \
                        and not {"output", "cache_key"} <= first.keys()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return path.name == MESSAGES_FILE  # named so: let the reader report what is wrong
    return path.name == MESSAGES_FILE


def write_messages(dataset: Dataset, folder: str | Path, system_prompt: str | None = None) -> Path:
    """Write ``folder/messages.jsonl`` (atomically); returns the file."""
    path = Path(folder) / MESSAGES_FILE
    personas = dataset.persona_map()
    with atomic_write(path) as fh:
        for conv in dataset.conversations:
            messages = [m.model_dump() for m in conversation_messages(conv, system_prompt or "")]
            if not system_prompt:
                messages = messages[1:]
            if conv.reference is not None:
                messages.append({"role": "assistant", "content": conv.reference})
            row = {"messages": messages, **conversation_row(conv, personas.get(conv.persona_id))}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _turns(messages: Any, path: Path, where: str, problems: Problems) -> tuple[list[dict[str, Any]], Any] | None:
    """(turns, reference) from a messages list, or None after reporting what is wrong."""
    if not isinstance(messages, list) or not messages:
        problems.add(path, "messages must be a non-empty list of {role, content} objects", where=where,
                     field="messages")
        return None
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        loc = f"{where}, messages[{i}]"
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            problems.add(path, "expected a {\"role\": ..., \"content\": ...} object", where=loc, field="messages")
            return None
        role = str(m["role"]).lower()
        if role in ("system", "developer"):
            if turns:
                problems.add(path, "a system message after the dialogue began", where=loc, field="role",
                             hint="put the system prompt first or drop it")
                return None
            continue
        if role not in _ROLES:
            problems.add(path, f"unknown role {m['role']!r}", where=loc, field="role",
                         hint="use system, user (the client) or assistant (the supporter)")
            return None
        turns.append({"role": _ROLES[role], "text": m["content"]})
    reference = turns.pop()["text"] if turns and turns[-1]["role"] == "supporter" else None
    return turns, reference


def read_messages(path: str | Path, problems: Problems) -> Dataset:
    """Read a messages JSONL file (or a folder holding ``messages.jsonl``)."""
    path = Path(path)
    file = messages_path(path) or (path / MESSAGES_FILE if path.is_dir() else path)
    if not file.is_file():
        problems.add(file, "no messages file", hint=f"write {MESSAGES_FILE} with one conversation a line")
        return Dataset(personas=[], conversations=[], source=str(path))
    rows = []
    for where, obj in _rows_jsonl(file, problems):
        parsed = _turns(obj.get("messages"), file, where, problems)
        if parsed is None:
            continue
        row = {k: v for k, v in obj.items() if k != "messages"}
        row["turns"], row["reference"] = parsed
        rows.append((where, row))
    return dataset_from_rows(rows, file, problems, source=str(path))
