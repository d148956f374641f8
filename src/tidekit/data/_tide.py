"""Read and write the published TIDE layout.

A TIDE folder holds, per persona N, ``metadata/{N}_metadata.json`` (client demographics and
behaviours) and one or more ``conversations/{N}_conversation*.json`` files (its conversations).
The persona id is the file name's prefix before the first ``_``. The key names inside are not
published, so the reader is tolerant:

- a conversation file may be a JSON list of conversations, an object mapping a key (such as
  ``conversation_1``) to a conversation, or either of those wrapped under a container key
  (``{"conversations": ...}`` or any other single key holding them);
- a conversation is a client/reply pair (``person``/``client``/``user_input``/``user``...,
  ``chatbot``/``assistant``/``reference_response``/``response``...; key case and spacing do not
  matter), such a pair nested one level down, a turn list (``turns``/``messages`` of
  ``role``/``text`` objects), or a JSON list of turns;
- conversation ids are made unique across the dataset: the file's own key (or the pair's own
  ``conversation_id``) prefixed with the persona id, ``{N}-{key}``, unless it already starts
  with ``{N}-`` or ``{N}_``; the original key is kept in ``provenance.key``;
- metadata may nest its fields in blocks (``{"demographics": {"age": ...}, "trauma": {"type":
  ...}}``): known persona fields are flattened where the meaning is clear (``age``,
  ``age_group``, ``gender``, ``trauma_type``, ``behaviors`` onto the typed fields; ``education``
  and ``co_occurring_condition`` onto those keys of ``Persona.attributes``); everything else is
  kept verbatim in ``attributes``. A known field of the wrong shape is a warning naming the file
  and field, and its value is kept as given in ``attributes``.

The writer produces one canonical variant that the reader maps back to identical records and
that third-party loaders of the release read too: ``{N}_metadata.json`` as a flat object and
``{N}_conversations.json`` as an object mapping each conversation's key to its
``person``/``chatbot`` pair (a ``turns`` list for longer dialogues).

This module finds the files and writes the layout; the key aliases live in ``_tide_keys``, the
metadata reader in ``_tide_persona`` and the conversation reader in ``_tide_conversations``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tidekit._io import write_json
from tidekit.data._problems import Problems
from tidekit.data._schema import Conversation, Dataset, Persona
from tidekit.data._tide_conversations import _conversation_items, _parse_conversation
from tidekit.data._tide_keys import TYPED_FIELDS, _slug
from tidekit.data._tide_persona import _parse_persona

__all__ = ["is_tide_folder", "read_tide", "write_tide"]

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_CONVERSATIONS_PER_PERSONA = 10_000

_META_RE = re.compile(r"^(?P<n>[^_]+)_metadata[^/]*\.json$", re.IGNORECASE)
_CONV_RE = re.compile(r"^(?P<n>[^_]+)_conversations?[^/]*\.json$", re.IGNORECASE)


def is_tide_folder(path: Path) -> bool:
    """True if ``path`` looks like a TIDE folder (has metadata or conversation JSON files)."""
    return path.is_dir() and any(
        _META_RE.match(p.name) or _CONV_RE.match(p.name) for p in path.glob("**/*.json")
    )



def _load_json(path: Path, problems: Problems) -> Any:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        problems.add(path, f"file is {size / 1e6:.0f} MB, over the {MAX_FILE_BYTES // 2**20} MiB limit",
                     hint="a TIDE file holds one persona; split it or check it is the right file")
        return None
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.add(path, f"not valid UTF-8 (bad byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                     where=f"byte {exc.start}", hint="re-save the file as UTF-8")
        return None
    if not text.strip():
        problems.add(path, "file is empty", hint="write the JSON content or remove the file")
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.add(path, f"malformed JSON: {exc.msg}", where=f"line {exc.lineno}, column {exc.colno}",
                     hint="fix the JSON syntax at that position")
        return None



def _persona_of(name: str, pattern: re.Pattern[str]) -> str | None:
    m = pattern.match(name)
    return m["n"] if m else None


def read_tide(folder: str | Path, problems: Problems | None = None) -> Dataset:
    """Read a TIDE-layout folder. Problems are added to ``problems`` (raised if None)."""
    folder = Path(folder)
    own = problems is None
    problems = problems if problems is not None else Problems()
    meta_files: dict[str, Path] = {}
    conv_files: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("**/*.json"), key=lambda p: (_natural_path(p), str(p))):
        if path.name.startswith("."):
            continue
        if n := _persona_of(path.name, _META_RE):
            if n in meta_files:
                problems.add(path, f"second metadata file for persona {n!r} (first: {meta_files[n]})",
                             hint="keep one metadata file per persona")
            meta_files.setdefault(n, path)
        elif n := _persona_of(path.name, _CONV_RE):
            conv_files.setdefault(n, []).append(path)
    if not meta_files and not conv_files:
        problems.add(folder, "no '*_metadata.json' or '*_conversation*.json' files found",
                     hint="point at a folder with metadata/ and conversations/ in the TIDE layout")
    personas, conversations = [], []
    no_scenario = 0
    for n in sorted(set(meta_files) | set(conv_files), key=_natural):
        if n not in meta_files:
            problems.add(conv_files[n][0], f"persona {n!r} has conversations but no metadata file",
                         hint=f"add metadata/{n}_metadata.json")
        if n not in conv_files:
            problems.add(meta_files[n], f"persona {n!r} has metadata but no conversation file",
                         hint=f"add conversations/{n}_conversations.json")
        if n in meta_files:
            doc = _load_json(meta_files[n], problems)
            if doc is not None and (persona := _parse_persona(n, doc, meta_files[n], problems)):
                personas.append(persona)
        count = 0
        seen: dict[str, Path] = {}
        for path in conv_files.get(n, []):
            doc = _load_json(path, problems)
            if doc is None:
                continue
            items = _conversation_items(doc)
            if items is None:
                problems.add(path, "no list of conversations found",
                             hint="write a JSON object mapping each conversation's key to its "
                                  "{\"person\": ..., \"chatbot\": ...} pair, or a JSON list of such pairs")
                continue
            for key, where, item in items:
                conv = _parse_conversation(item, n, count, key, path, where, problems)
                count += 1
                if conv is None:
                    continue
                if conv.id in seen and seen[conv.id] != path:
                    # several files of one persona reuse a key: tell them apart by the file
                    tag = _slug(re.sub(r"^conversations?", "", path.stem.split("_", 1)[-1], flags=re.I)) \
                        if "_" in path.stem else _slug(path.stem)
                    conv = conv.model_copy(update={"id": f"{n}-{tag}-{conv.id.removeprefix(f'{n}-')}"})
                seen.setdefault(conv.id, path)
                conv.provenance.source = conv.provenance.source or "tide"
                no_scenario += conv.scenario_id == "unknown" and conv.scenario is None
                conversations.append(conv)
        if count > MAX_CONVERSATIONS_PER_PERSONA:
            problems.add(conv_files[n][0], f"{count:,} conversations for one persona is implausible",
                         hint="check the conversation files")
    if no_scenario:
        problems.warn(folder, f"{no_scenario} conversation(s) name no scenario; their scenario_id is 'unknown'",
                      field="scenario", hint="add a 'scenario' or 'scenario_id' key to each conversation "
                      "if you want per-scenario results")
    dataset = Dataset(personas=personas, conversations=conversations, source=str(folder))
    if own:
        problems.raise_if_errors(folder)
    return dataset


def _natural(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (10**12, key)


def _natural_path(path: Path) -> tuple[tuple[int, str], ...]:
    """Sort key putting 'part2' before 'part10' and '2_...' before '10_...'."""
    return tuple((int(t), "") if t.isdigit() else (10**12, t) for t in re.split(r"(\d+)", str(path)) if t)


# --- writing ----------------------------------------------------------------------------------


def _persona_doc(p: Persona) -> dict[str, Any]:
    doc: dict[str, Any] = {"persona_id": p.id}
    for field in TYPED_FIELDS:
        value = getattr(p, field)
        if value not in (None, []):
            doc[field] = value
    doc.update(p.attributes)
    return doc


def _conversation_doc(c: Conversation) -> dict[str, Any]:
    doc: dict[str, Any] = {"conversation_id": c.id, "scenario_id": c.scenario_id}
    if c.scenario is not None:
        doc["scenario"] = c.scenario
    if c.split is not None:
        doc["split"] = c.split
    if len(c.turns) == 1:
        doc["person"] = c.turns[0].text
    else:
        doc["turns"] = [{"role": t.role, "text": t.text} for t in c.turns]
    if c.reference is not None:
        doc["chatbot"] = c.reference
    provenance = c.provenance.model_dump(exclude_none=True)
    if provenance:
        doc["provenance"] = provenance
    doc.update(c.extra)
    return doc


def write_tide(dataset: Dataset, folder: str | Path) -> None:
    """Write ``dataset`` in the canonical TIDE layout under ``folder`` (files written atomically).

    Each persona's conversations go to ``conversations/{N}_conversations.json``: an object mapping
    each conversation's original key (``provenance.key``, else its id) to its pair.
    """
    folder = Path(folder)
    by_persona: dict[str, list[Conversation]] = {}
    for c in dataset.conversations:
        by_persona.setdefault(c.persona_id, []).append(c)
    for p in dataset.personas:
        write_json(folder / "metadata" / f"{p.id}_metadata.json", _persona_doc(p))
    for pid, convs in by_persona.items():
        doc: dict[str, Any] = {}
        for c in convs:
            key = getattr(c.provenance, "key", None)
            key = key if isinstance(key, str) and key and key not in doc else c.id
            while key in doc:  # never overwrite a conversation
                key += "_"
            doc[key] = _conversation_doc(c)
        write_json(folder / "conversations" / f"{pid}_conversations.json", doc)
