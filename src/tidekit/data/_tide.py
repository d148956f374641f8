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
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tidekit._io import write_json
from tidekit.data._flat import _SPLIT_ALIASES
from tidekit.data._problems import Problems
from tidekit.data._schema import Conversation, Dataset, Persona

__all__ = ["is_tide_folder", "read_tide", "write_tide"]

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_TEXT_CHARS = 20_000
MAX_CONVERSATIONS_PER_PERSONA = 10_000
_MAX_DEPTH = 4  # how deep the reader looks for conversations or metadata blocks

_META_RE = re.compile(r"^(?P<n>[^_]+)_metadata[^/]*\.json$", re.IGNORECASE)
_CONV_RE = re.compile(r"^(?P<n>[^_]+)_conversations?[^/]*\.json$", re.IGNORECASE)

# key aliases, compared after _norm (lower case, runs of other characters as one '_')
CLIENT_KEYS = ("person", "client", "user_input", "user", "patient", "human", "seeker", "client_message",
               "person_message", "user_message", "client_text", "person_text", "client_input",
               "client_utterance", "client_statement", "user_query", "person_input", "input")
SUPPORTER_KEYS = ("chatbot", "assistant", "reference_response", "response", "supporter", "bot", "ai",
                  "chatbot_response", "ai_response", "assistant_response", "reference_reply", "reference",
                  "reply", "model_response", "bot_response", "supporter_response", "therapist", "gpt",
                  "model_output", "output")
TURN_LIST_KEYS = ("turns", "messages", "dialogue", "dialog", "conversation", "utterances", "exchange")
ROLE_KEYS = ("role", "speaker", "from", "author")
TEXT_KEYS = ("text", "content", "message", "utterance", "value")
SCENARIO_ID_KEYS = ("scenario_id", "scenario_key")
SCENARIO_KEYS = ("scenario", "emotional_scenario", "scenario_name", "scenario_title", "scenario_label",
                 "scenario_description", "category", "scenario_type", "scenario_category", "emotion",
                 "emotion_category", "topic", "situation", "theme")
CONV_ID_KEYS = ("conversation_id", "id", "conv_id")
CONTAINER_KEYS = ("conversations", "dialogues", "dialogs", "data", "items", "records", "pairs", "conversation")
SPLIT_ALIASES = _SPLIT_ALIASES
_CLIENT_ROLES = {*CLIENT_KEYS, "speaker"}
_SUPPORTER_ROLES = {*SUPPORTER_KEYS, "listener", "system_response", "model", "counselor", "counsellor"}

# persona field -> metadata names that may hold it (after _norm; a nested block's name is
# joined to its key, so {"trauma": {"type": ...}} is 'trauma_type'). Typed fields of Persona
# first, then the canonical attribute keys. Order is priority: the first name found wins.
PERSONA_KEYS: dict[str, tuple[str, ...]] = {
    "age": ("age", "client_age", "age_years", "age_in_years", "current_age", "persona_age", "demographics_age"),
    "age_group": ("age_group", "age_range", "age_band", "age_bracket", "age_category", "age_cohort"),
    "gender": ("gender", "sex", "gender_identity", "client_gender", "persona_gender"),
    "trauma_type": ("trauma_type", "trauma", "index_trauma", "trauma_category", "type_of_trauma", "primary_trauma",
                    "trauma_kind", "trauma_name", "trauma_event", "trauma_event_type", "traumatic_event"),
    "behaviors": ("behaviors", "behaviours", "behavior", "behaviour", "exhibited_behaviors", "exhibited_behaviours",
                  "trauma_related_behaviors", "trauma_related_behaviours", "behaviors_exhibited",
                  "behaviours_exhibited", "behaviors_list", "behaviours_list", "trauma_behaviors",
                  "trauma_behaviours"),
    "education": ("education", "education_level", "educational_level", "highest_education", "educational_attainment",
                  "education_attainment", "level_of_education"),
    "co_occurring_condition": ("co_occurring_condition", "co_occurring_conditions", "cooccurring_condition",
                               "co_occurring", "comorbidity", "comorbidities", "comorbid_condition",
                               "comorbid_conditions", "co_morbidity", "co_occurring_disorder"),
}
TYPED_FIELDS = ("age", "age_group", "gender", "trauma_type", "behaviors")
ATTRIBUTE_FIELDS = ("education", "co_occurring_condition")
_ALIAS_FIELD = {alias: field for field, aliases in PERSONA_KEYS.items() for alias in aliases}
# nested metadata blocks the reader looks into: about the client themself (a block about a
# spouse or a perpetrator is not, so its 'age' stays where it is)
METADATA_BLOCKS = frozenset(("demographics", "demographic", "demographic_info", "demographic_information", "client",
                   "client_info", "client_profile", "client_information", "persona", "persona_info", "profile",
                   "personal", "personal_info", "personal_information", "personal_details", "basic_info",
                   "background", "details", "info", "metadata", "meta", "attributes", "trauma", "trauma_info",
                   "trauma_history", "trauma_details", "trauma_profile", "trauma_background", "clinical",
                   "clinical_info", "clinical_profile", "clinical_presentation", "presentation", "mental_health",
                   "diagnosis", "conditions", "symptoms", "behaviors", "behaviours", "age", "education",
                   "co_occurring", "trauma_information", "trauma_data"))
PERSONA_ID_KEYS = ("persona_id", "client_id", "id", "persona")


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def _norm_text(key: str) -> str:
    return _NON_ALNUM.sub("_", key.lower()).strip("_")


def _norm(key: object) -> str:
    """A key as compared with the aliases: lower case, runs of other characters as one '_'."""
    return _norm_text(str(key))


def _find(data: dict[str, Any], aliases: tuple[str, ...]) -> str | None:
    """The key of ``data`` matching the first alias (by priority), compared after _norm."""
    by_norm: dict[str, str] = {}
    for key in data:
        by_norm.setdefault(_norm(key), key)
    return next((by_norm[a] for a in aliases if a in by_norm), None)


def is_tide_folder(path: Path) -> bool:
    """True if ``path`` looks like a TIDE folder (has metadata or conversation JSON files)."""
    return path.is_dir() and any(
        _META_RE.match(p.name) or _CONV_RE.match(p.name) for p in path.glob("**/*.json")
    )


def _role_of(name: str) -> str | None:
    name = _norm(name)
    if name in _CLIENT_ROLES:
        return "client"
    if name in _SUPPORTER_ROLES:
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


# --- persona metadata ---------------------------------------------------------------------


def _candidates(attrs: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str, int]]:
    """(path, field) for every key that names a persona field, shallow first, then by position.

    Blocks are entered only when their name says they describe the client (METADATA_BLOCKS). In
    a block about one topic (``trauma``, ``age``, ``behaviors``...) a key counts only joined to the
    block's name: ``trauma.type`` is the trauma type, but ``trauma.age`` is not the client's age.
    """
    found: list[tuple[tuple[str, ...], str, int]] = []
    nested: list[tuple[str, dict[str, Any]]] = []
    block = _norm(prefix[-1]) if prefix else ""
    topic = _topic(block)
    topic_field = _ALIAS_FIELD.get(topic) if topic else None
    for key, value in attrs.items():
        name = _norm(key)
        joined = f"{topic or block}_{name}" if block else name
        bare = _ALIAS_FIELD.get(name)
        if topic:  # 'trauma.type', 'trauma.trauma_type', 'age.value'; not 'trauma.age'
            field = _ALIAS_FIELD.get(joined) or (bare if bare == topic_field else None) or (
                topic_field if name in ("value", "name", "label") else None)
        else:
            field = bare or _ALIAS_FIELD.get(joined)
        if isinstance(value, dict) and name in METADATA_BLOCKS | _TOPIC_BLOCKS and len(prefix) < _MAX_DEPTH \
                and not (field == "behaviors" and _bool_map(value)):
            nested.append((key, value))
        elif field:
            alias = joined if _ALIAS_FIELD.get(joined) == field else name if bare == field else field
            found.append(((*prefix, key), field, PERSONA_KEYS[field].index(alias) if alias in PERSONA_KEYS[field]
                          else 0))
    found.sort(key=lambda f: f[2])  # at one depth, the field's own name before its aliases
    for key, value in nested:
        found.extend(_candidates(value, (*prefix, key)))
    return found


_TOPIC_BLOCKS = frozenset(name for name in ("age", "education", "co_occurring", "trauma", "behaviors",
                                             "behaviours", "gender", "trauma_type", "age_group"))


def _topic(block: str) -> str | None:
    """The field-naming topic of a metadata block: 'trauma' for 'trauma_info', 'age' for 'age'..."""
    if not block:
        return None
    if "trauma" in block:
        return "trauma"
    if block.startswith("behavio"):
        return "behaviors"
    return block if block in _ALIAS_FIELD or block == "co_occurring" else None


def _bool_map(value: dict[str, Any]) -> bool:
    return bool(value) and all(isinstance(v, bool) for v in value.values())


def _coerce(field: str, value: Any) -> tuple[bool, Any]:
    """(ok, value in the field's shape) where the meaning is clear, else (False, value)."""
    if isinstance(value, list) and len(value) == 1 and field != "behaviors" and isinstance(value[0], str | int):
        value = value[0]
    if field == "age":
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int):
            return 0 <= value <= 120, value
        if isinstance(value, float) and value.is_integer():
            return 0 <= value <= 120, int(value)
        if isinstance(value, str) and (m := re.fullmatch(r"\s*(\d{1,3})([\s-]*(years?|yrs?|y)([\s-]*old)?)?\s*",
                                                          value, re.IGNORECASE)):
            return int(m.group(1)) <= 120, int(m.group(1))
        return False, value
    if field == "behaviors":
        if isinstance(value, str):
            return True, [v.strip() for v in re.split(r"[;,]", value) if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return True, value
        if isinstance(value, dict) and _bool_map(value):
            return True, [k for k, v in value.items() if v]
        return False, value
    if isinstance(value, str):
        return bool(value.strip()), value
    if isinstance(value, int | float) and not isinstance(value, bool) and field in ("age_group", "education"):
        return True, str(value)
    if field in ATTRIBUTE_FIELDS and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return True, value  # several co-occurring conditions: kept as a list (attributes are free-form)
    return False, value


def _get(attrs: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path[:-1]:
        attrs = attrs[key]
    return attrs[path[-1]]


def _remove(attrs: dict[str, Any], path: tuple[str, ...]) -> None:
    """Remove the value at ``path`` and any block it leaves empty."""
    parents = [attrs]
    for key in path[:-1]:
        parents.append(parents[-1][key])
    del parents[-1][path[-1]]
    for depth in range(len(path) - 1, 0, -1):
        if not parents[depth]:
            del parents[depth - 1][path[depth - 1]]


def _flatten_persona(n: str, meta: dict[str, Any], path: Path, problems: Problems) -> dict[str, Any]:
    """Persona fields from (possibly nested) metadata; the rest verbatim in ``attributes``."""
    attrs = json.loads(json.dumps(meta))  # deep copy
    fields: dict[str, Any] = {"id": n}
    id_key = _find(attrs, PERSONA_ID_KEYS)
    if id_key is not None and not isinstance(attrs[id_key], dict | list) \
            and not (isinstance(attrs[id_key], str) and " " in attrs[id_key].strip()):  # not a description
        if str(attrs[id_key]) == n:
            attrs.pop(id_key)
        else:
            problems.warn(path, f"metadata says {id_key}={attrs[id_key]!r} but the file name says {n!r}; "
                          "the file name is used", field=id_key)
    chosen: dict[str, tuple[tuple[str, ...], Any]] = {}
    skipped: set[str] = set()
    for key_path, field, _ in _candidates(attrs):
        if field in skipped:
            continue
        raw = _get(attrs, key_path)
        if raw is None or (isinstance(raw, str) and not raw.strip()):  # a known field left empty: nothing to keep
            _remove(attrs, key_path)
            continue
        ok, value = _coerce(field, raw)
        if not ok and field == "age" and isinstance(raw, str) and _AGE_RANGE.fullmatch(raw):
            field, ok = "age_group", True  # "25-34" or "65+" under 'age' is an age group
            if field in chosen or field in skipped:
                continue
        dotted = ".".join(key_path)
        if not ok:
            if field not in chosen:
                problems.warn(path, f"{dotted}={json.dumps(raw, ensure_ascii=False)[:80]} is not a valid {field}; "
                              "kept as given in the persona's attributes", field=dotted,
                              hint=_SHAPE_HINT[field])
                skipped.add(field)  # a later alias must not stand in for a value the source gave
            continue
        if field in chosen:
            if chosen[field][1] != value:
                problems.warn(path, f"{dotted} differs from {'.'.join(chosen[field][0])} (used for {field}); "
                              "kept as given in the persona's attributes", field=dotted)
            else:
                _remove(attrs, key_path)
            continue
        chosen[field] = (key_path, value)
    for field, (key_path, value) in chosen.items():
        _remove(attrs, key_path)
        if field in TYPED_FIELDS:
            fields[field] = value
    for field in ATTRIBUTE_FIELDS:  # canonical keys, after the other attributes
        if field in chosen:
            attrs[field] = chosen[field][1]
    fields["attributes"] = attrs
    return fields


_AGE_RANGE = re.compile(r"\s*\d{1,3}\s*([-–—]|to)\s*\d{1,3}\s*|\s*\d{1,3}\s*\+\s*|\s*(under|over)\s*\d{1,3}\s*",
                        re.IGNORECASE)

_SHAPE_HINT = {
    "age": "write age as a whole number of years (0-120)",
    "age_group": "write the age group as text, e.g. '25-34'",
    "gender": "write gender as text",
    "trauma_type": "write the trauma type as text",
    "behaviors": "write behaviours as a list of strings",
    "education": "write education as text",
    "co_occurring_condition": "write the co-occurring condition as text",
}


def _parse_persona(n: str, meta: Any, path: Path, problems: Problems) -> Persona | None:
    if isinstance(meta, list) and len(meta) == 1:
        meta = meta[0]
    if not isinstance(meta, dict):
        problems.add(path, f"expected a JSON object of persona metadata, got {type(meta).__name__}",
                     hint="write the metadata as one JSON object")
        return None
    try:
        return Persona.model_validate(_flatten_persona(n, meta, path, problems))
    except ValidationError as exc:
        problems.add_validation(path, exc)
        return None


# --- conversations --------------------------------------------------------------------------


def _text_value(value: Any) -> Any:
    """A message's text: a string as is, or the text inside {'text': ...}-like objects."""
    if isinstance(value, dict) and (key := _find(value, TEXT_KEYS)) is not None:
        return value[key]
    return value


_CLIENT_TOKENS = frozenset(("person", "client", "user", "patient", "human", "seeker"))
_SUPPORTER_TOKENS = frozenset(("chatbot", "assistant", "response", "reply", "bot", "ai", "supporter", "therapist",
                               "counselor", "counsellor", "reference", "model"))
_NOT_TEXT_TOKENS = frozenset(("id", "name", "type", "role", "age", "gender", "count", "index", "number", "rating",
                              "score", "label", "tokens", "length"))


def _speaker_key(data: dict[str, Any], client: bool) -> str | None:
    """The key of the client (or supporter) text: a known alias, else one key naming that side
    only ('client_statement_text'), whose value is text."""
    key = _find(data, CLIENT_KEYS if client else SUPPORTER_KEYS)
    if key is not None:
        return key
    mine, theirs = (_CLIENT_TOKENS, _SUPPORTER_TOKENS) if client else (_SUPPORTER_TOKENS, _CLIENT_TOKENS)
    keys = [k for k, v in data.items()
            if (parts := set(_norm(k).split("_"))) & mine and not parts & (theirs | _NOT_TEXT_TOKENS)
            and (isinstance(v, str) or (isinstance(v, dict) and _find(v, TEXT_KEYS) is not None))]
    return keys[0] if len(keys) == 1 else None


def _is_turn(value: Any) -> bool:
    return isinstance(value, dict) and _find(value, ROLE_KEYS) is not None and _find(value, TEXT_KEYS) is not None


def _turns_from_list(items: list[Any], path: Path, where: str, problems: Problems) -> list[dict[str, Any]] | None:
    turns = []
    for i, item in enumerate(items):
        loc = f"{where}[{i}]"
        if isinstance(item, str):  # plain strings alternate, the client first
            turns.append({"role": "client" if i % 2 == 0 else "supporter", "text": item})
            continue
        if not isinstance(item, dict):
            problems.add(path, f"expected a turn object, got {type(item).__name__}", where=loc)
            return None
        role_key, text_key = _find(item, ROLE_KEYS), _find(item, TEXT_KEYS)
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
            text = _text_value(text)
        else:
            problems.add(path, "turn has no recognisable speaker and text", where=loc,
                         hint="write {\"role\": \"client\", \"text\": \"...\"}")
            return None
        turns.append({"role": role, "text": text})
    return turns


def _is_turn_list(value: Any) -> bool:
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(t, str) for t in value):
        return len(value) == 2  # [client, reply]
    return all(isinstance(t, dict) and ((_find(t, ROLE_KEYS) is not None and _find(t, TEXT_KEYS) is not None)
                                        or (len(t) == 1 and _role_of(next(iter(t))) is not None)) for t in value)


def _nested_pair_key(data: dict[str, Any]) -> str | None:
    """The key of the one value that is a client/reply pair, with scalar siblings (scenario...)."""
    keys = [k for k, v in data.items() if isinstance(v, dict) and _find(v, CLIENT_KEYS) is not None]
    if len(keys) == 1 and not all(isinstance(v, dict | list) for v in data.values()) \
            and not re.search(r"\d", str(keys[0])):  # 'conversation_1' names a conversation, not a wrapper
        return keys[0]
    return None


def _is_pair(value: Any) -> bool:
    """True if ``value`` is one conversation (not a container of them)."""
    if isinstance(value, list):
        return _is_turn_list(value)
    if not isinstance(value, dict):
        return False
    if _find(value, CLIENT_KEYS) is not None:
        return True
    list_key = _find(value, TURN_LIST_KEYS)
    if list_key is not None and _is_turn_list(value[list_key]):
        return True
    if sum(_is_turn(v) for v in value.values()) >= 2:  # {"turn_1": {"role": ..., "text": ...}, ...}
        return True
    return _nested_pair_key(value) is not None


def _unwrap(data: dict[str, Any]) -> dict[str, Any]:
    """Lift a client/reply pair nested one level down (``{"scenario": ..., "conversation": {"user": ...}}``)."""
    if _find(data, CLIENT_KEYS) is not None:
        return data
    list_key = _find(data, TURN_LIST_KEYS)
    if list_key is not None and isinstance(data[list_key], list):
        return data
    keys = [k for k, v in data.items() if isinstance(v, dict) and _find(v, CLIENT_KEYS) is not None]
    if len(keys) == 1:
        rest = {k: v for k, v in data.items() if k != keys[0]}
        return {**rest, **data[keys[0]]}
    return data


def _local_id(n: str, data: dict[str, Any], key: str | None, index: int) -> tuple[str, str | None]:
    """(dataset-wide id, original key if it differs) of one conversation of persona ``n``."""
    id_key = _find(data, CONV_ID_KEYS)
    explicit = data.pop(id_key) if id_key is not None and not isinstance(data[id_key], dict | list | None) else None
    local = str(explicit) if explicit is not None else key if key is not None else f"{index + 1:02d}"
    conv_id = local if local.startswith((f"{n}-", f"{n}_")) else f"{n}-{local}"
    original = key if key is not None else str(explicit) if explicit is not None else None
    return conv_id, original if original != conv_id else None


def _parse_conversation(
    item: Any, n: str, index: int, key: str | None, path: Path, where: str, problems: Problems
) -> Conversation | None:
    if isinstance(item, list):
        item = {"turns": item}
    if not isinstance(item, dict):
        problems.add(path, f"expected a conversation object, got {type(item).__name__}", where=where)
        return None
    data = _unwrap(json.loads(json.dumps(item)))
    conv_id, original_key = _local_id(n, data, key, index)
    sid_key = _find(data, SCENARIO_ID_KEYS)
    scenario_id = str(data.pop(sid_key)) if sid_key is not None else None
    sc_key = _find(data, SCENARIO_KEYS)
    scenario = data.pop(sc_key) if sc_key is not None else None
    if isinstance(scenario, dict):  # {"id": 3, "name": "Flashback", ...}: id and label, the rest kept
        details = dict(scenario)
        inner_id = _find(details, ("id", "scenario_id", "key", "slug"))
        inner_label = _find(details, ("name", "title", "label", "scenario"))
        if inner_id is not None and scenario_id is None and isinstance(details[inner_id], str | int):
            scenario_id = str(details.pop(inner_id))
        scenario = details.pop(inner_label) if inner_label is not None else None
        if details:
            data["scenario_details"] = details
    if scenario is not None and not isinstance(scenario, str):
        scenario = json.dumps(scenario, ensure_ascii=False)
    if scenario_id is None:
        scenario_id = _slug(scenario) if scenario else "unknown"
    reference = None
    turns: list[dict[str, Any]] | None = None
    list_key = _find(data, TURN_LIST_KEYS)
    if list_key is not None and isinstance(data[list_key], list):
        turns = _turns_from_list(data.pop(list_key), path, f"{where}.{list_key}", problems)
        if turns is None:
            return None
    elif _find(data, CLIENT_KEYS) is None and (turn_keys := [k for k, v in data.items() if _is_turn(v)]):
        # turns as an object of turn objects, in file order
        turns = _turns_from_list([data.pop(k) for k in turn_keys], path, f"{where}.{turn_keys[0]}", problems)
        if turns is None:
            return None
    client_key = _speaker_key(data, client=True)
    supporter_key = _speaker_key(data, client=False)
    if turns is None:
        if client_key is None:
            problems.add(path, "no client message found", where=where,
                         hint=f"add one of the keys {', '.join(CLIENT_KEYS[:4])} (or a 'turns' list)")
            return None
        turns = [{"role": "client", "text": _text_value(data.pop(client_key))}]
    if supporter_key is not None:
        reference = _text_value(data.pop(supporter_key))
    elif turns and turns[-1]["role"] == "supporter":
        reference = turns.pop()["text"]
    if reference is None:
        problems.warn(path, "no reference (supporter) response", where=where,
                      hint="add a 'chatbot' key with the reference reply")
    split = data.pop("split", None)
    if isinstance(split, str):
        split = SPLIT_ALIASES.get(split.strip().lower(), split)
    provenance = data.pop("provenance", None) or {}
    if original_key is not None and isinstance(provenance, dict):
        provenance.setdefault("key", original_key)
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


def _conversation_items(doc: Any, where: str = "", depth: int = 0) -> list[tuple[str | None, str, Any]] | None:
    """(key or None, location, conversation) for each conversation in a file; None if none is found."""
    def loc(part: str) -> str:
        return f"{where}.{part}" if where else part

    if isinstance(doc, list):  # [{...}, ...], or [{"conversation_1": {...}}, ...] keeping the keys
        return [(str(next(iter(c))), f"{where}[{i}]", next(iter(c.values()))) if _single_keyed(c)
                else (None, f"{where}[{i}]", c) for i, c in enumerate(doc)]
    if not isinstance(doc, dict) or not doc or depth > _MAX_DEPTH:
        return None
    if _is_pair(doc):
        return [(None, where or "conversation", doc)]
    container = _find(doc, CONTAINER_KEYS)  # a known container key
    if container is not None and isinstance(doc[container], list | dict):
        inner = _conversation_items(doc[container], loc(container), depth + 1)
        if inner is not None:
            return inner
    values = list(doc.values())
    pair_stems = {_stem(k) for k, v in doc.items() if _is_pair(v)}
    if pair_stems:
        # each conversation under its key (conversation_1, ...); scalars beside them (a persona id)
        # and blocks named otherwise (a metadata block) are not conversations
        return [(str(k), loc(str(k)), v) for k, v in doc.items()
                if isinstance(v, dict | list) and (_is_pair(v) or _stem(k) in pair_stems)]
    holders = [k for k, v in doc.items() if _holds_conversations(v, depth + 1)]
    if len(holders) == 1:  # any other single key holding them
        return _conversation_items(doc[holders[0]], loc(holders[0]), depth + 1)
    if all(isinstance(v, dict) for v in values):  # keyed objects, none readable: report each one
        return [(str(k), loc(str(k)), v) for k, v in doc.items()]
    return None


def _stem(key: object) -> str:
    """A key without its digits: 'conversation_12' -> 'conversation_'."""
    return re.sub(r"\d+", "", _norm(key))


def _single_keyed(item: Any) -> bool:
    """True for {"conversation_1": <pair>}: one conversation under its key."""
    if not isinstance(item, dict) or len(item) != 1:
        return False
    (key, value), = item.items()
    return _norm(key) not in TURN_LIST_KEYS + CONTAINER_KEYS and _role_of(key) is None and _is_pair(value)


def _holds_conversations(value: Any, depth: int) -> bool:
    if not isinstance(value, list | dict) or not value or _is_pair(value):
        return False
    items = _conversation_items(value, "", depth) or []
    return any(_is_pair(item) for _, _, item in items)


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
