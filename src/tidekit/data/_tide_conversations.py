"""TIDE conversation files -> :class:`Conversation`: the container, pair and turn-list shapes.

A file may hold a list of conversations, an object keyed by conversation, or either under a
container key; a conversation is a client/reply pair, a pair nested one level down, a turn list
or an object of turns. Ids are made unique per persona (``{N}-{key}``), the original key kept
in ``provenance.key``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tidekit.data._problems import Problems
from tidekit.data._schema import Conversation
from tidekit.data._tide_keys import (
    _MAX_DEPTH,
    CLIENT_KEYS,
    CONTAINER_KEYS,
    CONV_ID_KEYS,
    MAX_TEXT_CHARS,
    ROLE_KEYS,
    SCENARIO_ID_KEYS,
    SCENARIO_KEYS,
    SPLIT_ALIASES,
    SUPPORTER_KEYS,
    TEXT_KEYS,
    TURN_LIST_KEYS,
    _find,
    _norm,
    _role_of,
    _slug,
)


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
