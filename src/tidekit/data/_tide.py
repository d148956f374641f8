"""Read and write the published TIDE layout.

A TIDE folder holds, per persona N, ``metadata/{N}_metadata.json`` (client demographics and
behaviours) and one or more ``conversations/{N}_conversation*.json`` files (its conversations).
The key names inside are not published, so the reader is tolerant: it accepts the variants
third-party loaders use (``person``/``client``/``user`` for the client text, ``chatbot``/
``assistant``/``response`` for the reply), flat or nested conversation objects, and turn lists.
Metadata fields it does not map to a typed field are kept in ``Persona.attributes``.

The writer produces one canonical variant, which the reader maps back to identical records.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tidekit._io import write_json
from tidekit.data._problems import Problems
from tidekit.data._schema import Conversation, Dataset, Persona

__all__ = ["is_tide_folder", "read_tide", "write_tide"]

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_TEXT_CHARS = 20_000
MAX_CONVERSATIONS_PER_PERSONA = 10_000

_META_RE = re.compile(r"^(?P<n>.+?)_metadata\.json$")
_CONV_RE = re.compile(r"^(?P<n>.+?)_conversations?.*\.json$")

CLIENT_KEYS = ("person", "client", "user", "patient", "human", "client_message", "person_message", "user_message")
SUPPORTER_KEYS = ("chatbot", "assistant", "response", "supporter", "bot", "ai", "chatbot_response",
                  "ai_response", "therapist")
TURN_LIST_KEYS = ("turns", "messages", "dialogue", "dialog", "conversation", "utterances")
ROLE_KEYS = ("role", "speaker", "from", "author")
TEXT_KEYS = ("text", "content", "message", "utterance", "value")
SCENARIO_ID_KEYS = ("scenario_id", "scenario_key")
SCENARIO_KEYS = ("scenario", "emotional_scenario", "scenario_name", "category", "scenario_type", "emotion", "topic")
CONV_ID_KEYS = ("conversation_id", "id", "conv_id")
CONTAINER_KEYS = ("conversations", "dialogues", "data", "items", "conversation")
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation", "test": "test", "testing": "test"}

# typed Persona field -> metadata keys that may hold it (first match wins)
PERSONA_KEYS: dict[str, tuple[str, ...]] = {
    "age": ("age", "client_age", "age_years"),
    "age_group": ("age_group", "age_range", "age_band"),
    "gender": ("gender", "sex", "gender_identity"),
    "trauma_type": ("trauma_type", "trauma", "index_trauma", "trauma_category"),
    "behaviors": ("behaviors", "behaviours", "exhibited_behaviors", "exhibited_behaviours",
                  "trauma_related_behaviors", "trauma_related_behaviours"),
}
PERSONA_ID_KEYS = ("persona_id", "client_id", "id", "persona")


def is_tide_folder(path: Path) -> bool:
    """True if ``path`` looks like a TIDE folder (has metadata or conversation JSON files)."""
    return path.is_dir() and (
        any(path.glob("**/*_metadata.json")) or any(path.glob("**/*_conversation*.json"))
    )


def _role_of(name: str) -> str | None:
    name = name.strip().lower()
    if name in CLIENT_KEYS or name in ("client", "person", "patient", "seeker", "speaker"):
        return "client"
    if name in SUPPORTER_KEYS or name in ("supporter", "listener", "system_response", "gpt", "model"):
        return "supporter"
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:80] or "unknown"


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


def _pop_first(data: dict[str, Any], keys: tuple[str, ...]) -> tuple[bool, Any]:
    """Find the first key present at the top level or one level down; remove and return it."""
    for key in keys:
        if key in data:
            return True, data.pop(key)
    for value in data.values():
        if isinstance(value, dict):
            for key in keys:
                if key in value:
                    return True, value.pop(key)
    return False, None


def _parse_persona(n: str, meta: Any, path: Path, problems: Problems) -> Persona | None:
    if isinstance(meta, list) and len(meta) == 1:
        meta = meta[0]
    if not isinstance(meta, dict):
        problems.add(path, f"expected a JSON object of persona metadata, got {type(meta).__name__}",
                     hint="write the metadata as one JSON object")
        return None
    attrs = json.loads(json.dumps(meta))  # deep copy
    fields: dict[str, Any] = {"id": n}
    for key in PERSONA_ID_KEYS:
        if key in attrs:
            if str(attrs[key]) == n:
                attrs.pop(key)
            else:
                problems.warn(path, f"metadata says {key}={attrs[key]!r} but the file name says {n!r}; "
                              "the file name is used", field=key)
            break
    for field, keys in PERSONA_KEYS.items():
        found, value = _pop_first(attrs, keys)
        if not found or value is None:
            continue
        if field == "age" and isinstance(value, str):
            match = re.match(r"\s*(\d+)", value)
            value = int(match.group(1)) if match else value
        if field == "behaviors" and isinstance(value, str):
            value = [v.strip() for v in re.split(r"[;,]", value) if v.strip()]
        fields[field] = value
    fields["attributes"] = attrs
    try:
        return Persona.model_validate(fields)
    except ValidationError as exc:
        problems.add_validation(path, exc)
        return None


def _turns_from_list(items: list[Any], path: Path, where: str, problems: Problems) -> list[dict[str, str]] | None:
    turns = []
    for i, item in enumerate(items):
        loc = f"{where}[{i}]"
        if not isinstance(item, dict):
            problems.add(path, f"expected a turn object, got {type(item).__name__}", where=loc)
            return None
        role_key = next((k for k in ROLE_KEYS if k in item), None)
        text_key = next((k for k in TEXT_KEYS if k in item), None)
        if role_key and text_key:
            role, text = _role_of(str(item[role_key])), item[text_key]
            if role is None:
                problems.add(path, f"unknown speaker {item[role_key]!r}", where=loc, field=role_key,
                             hint="use a client role (person/client/user) or a supporter role (chatbot/assistant)")
                return None
        elif len(item) == 1:
            (key, text), = item.items()
            role = _role_of(key)
            if role is None:
                problems.add(path, f"unknown speaker key {key!r}", where=loc, field=key,
                             hint="use person/client/user or chatbot/assistant/response")
                return None
        else:
            problems.add(path, "turn has no recognisable speaker and text", where=loc,
                         hint="write {\"role\": \"client\", \"text\": \"...\"}")
            return None
        turns.append({"role": role, "text": text})
    return turns


def _parse_conversation(
    item: Any, n: str, index: int, id_hint: str | None, path: Path, where: str, problems: Problems
) -> Conversation | None:
    if not isinstance(item, dict):
        problems.add(path, f"expected a conversation object, got {type(item).__name__}", where=where)
        return None
    data = json.loads(json.dumps(item))
    # a nested object such as {"scenario": ..., "conversation": {"person": ..., "chatbot": ...}}
    for key in TURN_LIST_KEYS:
        if isinstance(data.get(key), dict):
            inner = data.pop(key)
            data = {**data, **inner}
            break
    conv_id = next((str(data.pop(k)) for k in CONV_ID_KEYS if k in data and data[k] is not None), None)
    conv_id = conv_id or id_hint or f"{n}-{index + 1:02d}"
    scenario_id = next((str(data.pop(k)) for k in SCENARIO_ID_KEYS if k in data), None)
    scenario = next((data.pop(k) for k in SCENARIO_KEYS if k in data), None)
    if scenario is not None and not isinstance(scenario, str):
        scenario = json.dumps(scenario, ensure_ascii=False)
    if scenario_id is None:
        if scenario is None:
            problems.warn(path, "no scenario given; using 'unknown'", where=where, field="scenario",
                          hint="add a 'scenario' or 'scenario_id' key")
        scenario_id = _slug(scenario) if scenario else "unknown"
    reference = None
    turns: list[dict[str, str]] | None = None
    list_key = next((k for k in TURN_LIST_KEYS if isinstance(data.get(k), list)), None)
    if list_key:
        turns = _turns_from_list(data.pop(list_key), path, f"{where}.{list_key}", problems)
        if turns is None:
            return None
    client_key = next((k for k in CLIENT_KEYS if k in data), None)
    supporter_key = next((k for k in SUPPORTER_KEYS if k in data), None)
    if turns is None:
        if client_key is None:
            problems.add(path, "no client message found", where=where,
                         hint=f"add one of the keys {', '.join(CLIENT_KEYS[:3])} (or a 'turns' list)")
            return None
        turns = [{"role": "client", "text": data.pop(client_key)}]
    if supporter_key is not None:
        reference = data.pop(supporter_key)
    elif turns and turns[-1]["role"] == "supporter":
        reference = turns.pop()["text"]
    if reference is None:
        problems.warn(path, "no reference (supporter) response", where=where,
                      hint="add a 'chatbot' key with the reference reply")
    split = data.pop("split", None)
    if isinstance(split, str):
        split = SPLIT_ALIASES.get(split.strip().lower(), split)
    provenance = data.pop("provenance", None) or {}
    for text_loc, text in [*((f"turns[{i}]", t["text"]) for i, t in enumerate(turns)), ("reference", reference)]:
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            problems.add(path, f"text is {len(text):,} characters, over the {MAX_TEXT_CHARS:,} limit",
                         where=f"{where}.{text_loc}", hint="check the field holds one message, not a whole file")
            return None
    record = {
        "id": conv_id, "persona_id": n, "scenario_id": scenario_id, "scenario": scenario, "turns": turns,
        "reference": reference, "split": split, "provenance": provenance, "extra": data,
    }
    try:
        return Conversation.model_validate(record)
    except ValidationError as exc:
        problems.add_validation(path, exc, where_prefix=where)
        return None


def _conversation_items(doc: Any) -> list[tuple[str | None, Any]] | None:
    if isinstance(doc, list):
        return [(None, c) for c in doc]
    if isinstance(doc, dict):
        for key in CONTAINER_KEYS:
            if isinstance(doc.get(key), list):
                return [(None, c) for c in doc[key]]
        if doc and all(isinstance(v, dict) for v in doc.values()):
            return [(str(k), v) for k, v in doc.items()]
        if any(k in doc for k in CLIENT_KEYS + TURN_LIST_KEYS):
            return [(None, doc)]
    return None


def read_tide(folder: str | Path, problems: Problems | None = None) -> Dataset:
    """Read a TIDE-layout folder. Problems are added to ``problems`` (raised if None)."""
    folder = Path(folder)
    own = problems is None
    problems = problems if problems is not None else Problems()
    meta_files: dict[str, Path] = {}
    conv_files: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("**/*.json")):
        if path.name.startswith("."):
            continue
        if m := _META_RE.match(path.name):
            n = m["n"]
            if n in meta_files:
                problems.add(path, f"second metadata file for persona {n!r} (first: {meta_files[n]})",
                             hint="keep one metadata file per persona")
            meta_files.setdefault(n, path)
        elif m := _CONV_RE.match(path.name):
            conv_files.setdefault(m["n"], []).append(path)
    if not meta_files and not conv_files:
        problems.add(folder, "no '*_metadata.json' or '*_conversation*.json' files found",
                     hint="point at a folder with metadata/ and conversations/ in the TIDE layout")
    personas, conversations = [], []
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
        for path in conv_files.get(n, []):
            doc = _load_json(path, problems)
            if doc is None:
                continue
            items = _conversation_items(doc)
            if items is None:
                problems.add(path, "no list of conversations found",
                             hint="write {\"conversations\": [...]} or a JSON list of conversation objects")
                continue
            for i, (hint_id, item) in enumerate(items):
                where = f"conversations[{i}]" if hint_id is None else hint_id
                conv = _parse_conversation(item, n, count, hint_id, path, where, problems)
                count += 1
                if conv:
                    conv.provenance.source = conv.provenance.source or "tide"
                    conversations.append(conv)
        if count > MAX_CONVERSATIONS_PER_PERSONA:
            problems.add(conv_files[n][0], f"{count:,} conversations for one persona is implausible",
                         hint="check the conversation files")
    dataset = Dataset(personas=personas, conversations=conversations, source=str(folder))
    if own:
        problems.raise_if_errors(folder)
    return dataset


def _natural(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (10**12, key)


def _persona_doc(p: Persona) -> dict[str, Any]:
    doc: dict[str, Any] = {"persona_id": p.id}
    for field in PERSONA_KEYS:
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
    """Write ``dataset`` in the canonical TIDE layout under ``folder`` (files written atomically)."""
    folder = Path(folder)
    by_persona: dict[str, list[Conversation]] = {}
    for c in dataset.conversations:
        by_persona.setdefault(c.persona_id, []).append(c)
    for p in dataset.personas:
        write_json(folder / "metadata" / f"{p.id}_metadata.json", _persona_doc(p))
    for pid, convs in by_persona.items():
        doc = {"persona_id": pid, "conversations": [_conversation_doc(c) for c in convs]}
        write_json(folder / "conversations" / f"{pid}_conversations.json", doc)

