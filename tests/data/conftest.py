"""Fixtures in the layout of the published TIDE release, as third-party loaders describe it.

``write_release(root)`` writes 4 personas x 20 conversations, each persona in another variant:

1. ``1_conversation.json``: an object mapping ``conversation_1`` ... ``conversation_20`` to
   ``person``/``chatbot`` pairs; flat metadata with a spaced, capitalised key.
2. ``2_conversation.json``: the same mapping wrapped under ``"conversations"``, ``client``/
   ``assistant`` keys; metadata nested in ``demographics`` / ``trauma`` blocks.
3. ``3_conversation_part1.json`` + ``3_conversation_part2.json``: two files, keys restarting at
   ``conversation_1`` in each, ``user_input``/``reference_response`` (the second file wraps them
   under an unknown container key ``dialogues_v2``); metadata behaviours as a ``{name: bool}`` map.
4. ``4_conversations.json``: a JSON list of ``user``/``response`` pairs, the pair nested under
   ``exchange`` for half of them; unicode everywhere (accents, CJK, RTL, emoji).

The same turn keys recur in every persona's file. All texts are synthetic, written for tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

UNICODE = "Ça me hante — 夜も眠れない, لا أستطيع النوم 😔"


def _client(p: int, i: int) -> str:
    return f"Persona {p}, moment {i}: I keep going back to that night and I can't sleep. {UNICODE if p == 4 else ''}".strip()


def _reply(p: int, i: int) -> str:
    return f"That sounds exhausting, and it makes sense after what you lived through ({p}.{i})." + (
        " Estás a salvo aquí — 一緒に考えましょう." if p == 4 else "")


def _dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")


def write_release(root: Path) -> Path:
    meta, conv = root / "metadata", root / "conversations"
    _dump(meta / "1_metadata.json", {"Persona ID": 1, "Age": 34, "Gender": "female", "Trauma Type": "assault",
                                     "Exhibited Behaviors": ["nightmares", "avoidance"], "hobby": "chess"})
    _dump(meta / "2_metadata.json", {
        "demographics": {"age": "52 years", "sex": "male", "education": "high school", "ethnicity": "white"},
        "trauma": {"type": "combat", "age_at_trauma": 22, "description": "convoy ambush"},
        "behaviours": "hypervigilance; nightmares", "co-occurring condition": "alcohol use disorder",
        "spouse": {"age": 50}})
    _dump(meta / "3_metadata.json", {
        "client": {"age_group": "65+", "gender": "non-binary"}, "trauma": "natural disaster",
        "exhibited_behaviors": {"avoidance": True, "flashbacks": False, "self-blame": True}})
    _dump(meta / "4_metadata.json", {"persona": {"age": 41, "gender": "mujer", "education": "licenciatura"},
                                     "trauma": {"category": "agresión sexual"}, "notes": "日本語のメモ — café"})
    _dump(conv / "1_conversation.json",
          {f"conversation_{i}": {"person": _client(1, i), "chatbot": _reply(1, i)} for i in range(1, 21)})
    _dump(conv / "2_conversation.json", {"persona_id": "2", "conversations": {
        f"conversation_{i}": {"client": _client(2, i), "assistant": _reply(2, i)} for i in range(1, 21)}})
    _dump(conv / "3_conversation_part1.json",
          {f"conversation_{i}": {"user_input": _client(3, i), "reference_response": _reply(3, i)}
           for i in range(1, 11)})
    _dump(conv / "3_conversation_part2.json", {"persona": "3", "dialogues_v2": {
        f"conversation_{i - 10}": {"user_input": _client(3, i), "reference_response": _reply(3, i)}
        for i in range(11, 21)}})
    _dump(conv / "4_conversations.json", [
        {"user": _client(4, i), "response": _reply(4, i)} if i % 2 else
        {"scenario": "Nuit blanche — 不眠", "exchange": {"user": _client(4, i), "response": _reply(4, i)}}
        for i in range(1, 21)])
    return root


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    """A TIDE-layout folder shaped like the published release: 4 personas x 20 conversations."""
    return write_release(tmp_path / "release")
