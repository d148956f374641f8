"""TIDE persona metadata -> :class:`Persona`: nested blocks flattened where the meaning is clear.

Known persona fields (``PERSONA_KEYS``) found at any depth of a block about the client become the
typed fields or the canonical attribute keys; a known field of the wrong shape is a warning
naming the file and field, its value kept as given in ``attributes``; everything else is kept
verbatim in ``attributes``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tidekit.data._problems import Problems
from tidekit.data._schema import Persona
from tidekit.data._tide_keys import (
    _ALIAS_FIELD,
    _MAX_DEPTH,
    ATTRIBUTE_FIELDS,
    METADATA_BLOCKS,
    PERSONA_ID_KEYS,
    PERSONA_KEYS,
    TYPED_FIELDS,
    _find,
    _norm,
)


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
