"""The TIDE release layout as third-party loaders describe it: tolerant reading, unique ids, round trips."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tidekit.data import Problems, load_dataset, save_dataset, validate_dataset
from tidekit.data._tide import read_tide
from tidekit.errors import DataError


def _dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def third_party_load(root: Path) -> dict[str, list[tuple[str, str]]]:
    """What loaders of the release do (written here from their description, independent of tidekit):
    persona id = file name prefix before the first '_', the file a dict (maybe under 'conversations')
    of turn key -> pair, client text under person/client/user_input/user, reply under
    chatbot/assistant/reference_response/response."""
    out: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((root / "conversations").glob("*_conversation*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        data = data.get("conversations", data)
        for pair in data.values():
            client = next(pair[k] for k in ("person", "client", "user_input", "user") if k in pair)
            reply = next(pair[k] for k in ("chatbot", "assistant", "reference_response", "response") if k in pair)
            out.setdefault(path.name.split("_")[0], []).append((client, reply))
    for path in (root / "metadata").glob("*_metadata.json"):
        assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    return out


def test_release_layout_validates_with_80_unique_conversations(release_dir: Path,
                                                                run_cli: Callable[..., Any]) -> None:
    result = run_cli("data", "validate", release_dir)
    assert result.code == 0, result.out
    assert "4 personas, 80 conversations" in result.out
    ds = load_dataset(release_dir)
    ids = [c.id for c in ds.conversations]
    assert len(set(ids)) == 80
    assert Counter(c.persona_id for c in ds.conversations) == {"1": 20, "2": 20, "3": 20, "4": 20}
    # ids: persona id + the file's own key; the key kept in provenance
    by_id = {c.id: c for c in ds.conversations}
    assert by_id["1-conversation_1"].provenance.model_dump()["key"] == "conversation_1"
    assert by_id["2-conversation_20"].client_text.startswith("Persona 2, moment 20")
    assert by_id["3-conversation_1"].reference is not None and by_id["3-conversation_1"].reference.endswith("(3.1).")
    # the second file of persona 3 restarts its keys: told apart by the file, original key kept
    second = by_id["3-part2-conversation_1"]
    assert second.client_text.startswith("Persona 3, moment 11") and second.provenance.model_dump()["key"] == \
        "conversation_1"
    # a list file has no keys: ids by position; a pair nested under 'exchange' is read too
    assert by_id["4-02"].scenario == "Nuit blanche — 不眠" and "😔" in by_id["4-02"].client_text
    assert "一緒に考えましょう" in (by_id["4-20"].reference or "")


def test_nested_metadata_is_flattened_onto_known_fields(release_dir: Path) -> None:
    problems = Problems()
    personas = {p.id: p for p in read_tide(release_dir, problems).personas}
    p1, p2, p3, p4 = (personas[n] for n in "1234")
    assert (p1.age, p1.gender, p1.trauma_type, p1.behaviors) == (34, "female", "assault", ["nightmares", "avoidance"])
    assert p1.attributes == {"hobby": "chess"}  # "Persona ID" matched the file name and was dropped
    assert (p2.age, p2.gender, p2.trauma_type) == (52, "male", "combat")
    assert p2.behaviors == ["hypervigilance", "nightmares"]
    assert p2.attributes["education"] == "high school"
    assert p2.attributes["co_occurring_condition"] == "alcohol use disorder"
    # everything else verbatim: the trauma block's other keys, the spouse's age (not the client's)
    assert p2.attributes["trauma"] == {"age_at_trauma": 22, "description": "convoy ambush"}
    assert p2.attributes["spouse"] == {"age": 50} and p2.attributes["demographics"] == {"ethnicity": "white"}
    assert (p3.age, p3.age_group, p3.gender, p3.trauma_type) == (None, "65+", "non-binary", "natural disaster")
    assert p3.behaviors == ["avoidance", "self-blame"]  # a {name: bool} map
    assert (p4.age, p4.gender, p4.trauma_type) == (41, "mujer", "agresión sexual")
    assert p4.attributes == {"notes": "日本語のメモ — café", "education": "licenciatura"}
    assert not problems.errors


def test_round_trip_tide_jsonl_tide_jsonl_is_unchanged(release_dir: Path, tmp_path: Path) -> None:
    save_dataset(load_dataset(release_dir), tmp_path / "j1", "jsonl")
    save_dataset(load_dataset(tmp_path / "j1"), tmp_path / "t", "tide")
    save_dataset(load_dataset(tmp_path / "t"), tmp_path / "j2", "jsonl")
    for name in ("personas.jsonl", "conversations.jsonl"):
        assert (tmp_path / "j1" / name).read_bytes() == (tmp_path / "j2" / name).read_bytes(), name
    assert len((tmp_path / "j2" / "conversations.jsonl").read_text(encoding="utf-8").splitlines()) == 80


def test_written_tide_is_readable_by_third_party_loaders(release_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset(release_dir)
    save_dataset(ds, tmp_path / "t", "tide")
    assert sorted(p.name for p in (tmp_path / "t" / "conversations").iterdir()) == \
        [f"{n}_conversations.json" for n in "1234"]
    expected: dict[str, list[tuple[str, str | None]]] = {}
    for c in ds.conversations:
        expected.setdefault(c.persona_id, []).append((c.client_text, c.reference))
    assert third_party_load(tmp_path / "t") == expected  # all 80 pairs, in order
    # the keys a loader sees are the release's own
    doc = json.loads((tmp_path / "t" / "conversations" / "1_conversations.json").read_text(encoding="utf-8"))
    assert list(doc)[:2] == ["conversation_1", "conversation_2"]


# --- one fixture per variant ---------------------------------------------------------------


def _persona(root: Path, n: str, meta: Any, conversations: Any, name: str | None = None) -> None:
    _dump(root / "metadata" / f"{n}_metadata.json", meta)
    _dump(root / "conversations" / (name or f"{n}_conversation.json"), conversations)


@pytest.mark.parametrize("doc", [
    {"c1": {"Person": "help", "ChatBot": "here"}},                                   # key case
    {"conversations": [{"User Input": "help", "Reference Response": "here"}]},       # spaced keys
    {"persona_id": "1", "meta": {"v": 2}, "records_x": {"c1": {"client": "help", "assistant": "here"}}},
    {"data": {"items": [{"person": {"text": "help"}, "chatbot": {"text": "here"}}]}},  # nested containers
    [[{"role": "user", "content": "help"}, {"role": "assistant", "content": "here"}]],  # a turn list per item
    {"c1": ["help", "here"]},                                                          # a [client, reply] pair
    {"person": "help", "chatbot": "here", "scenario": "s"},                            # one conversation
    {"c1": {"turn_1": {"speaker": "person", "message": "help"}, "turn_2": {"speaker": "chatbot",
                                                                          "message": "here"}}},  # turns object
    {"c1": {"client_statement_text": "help", "chatbot_reply_text": "here", "user_id": "u9"}},  # unlisted names
    [[{"person": "help"}, {"chatbot": "here"}]],                                     # single-key turns
    {"persona_id": "1", "metadata": {"source": "x"}, "conversation_1": {"person": "help", "chatbot": "here"}},
    [{"conversation_1": {"person": "help", "chatbot": "here"}}],                      # keyed list items
], ids=["case", "spaces", "unknown-container", "nested", "turn-list", "string-pair", "single", "turns-object",
        "unlisted-names", "single-key-turns", "keys-beside-scalars", "keyed-list-items"])
def test_conversation_file_variants(tmp_path: Path, doc: Any) -> None:
    _persona(tmp_path, "1", {"age": 30}, doc)
    (conv,) = load_dataset(tmp_path).conversations
    assert (conv.persona_id, conv.client_text, conv.reference) == ("1", "help", "here")
    assert conv.id.startswith("1-")
    if "conversation_1" in json.dumps(doc):
        assert conv.id == "1-conversation_1" and conv.provenance.model_dump()["key"] == "conversation_1"


def test_same_keys_across_personas_and_files_give_unique_ids(tmp_path: Path) -> None:
    for n in ("1", "2", "10"):
        _persona(tmp_path, n, {"gender": "female"},
                 {f"conversation_{i}": {"person": f"{n} says {i}", "chatbot": "ok"} for i in (1, 2)})
    _dump(tmp_path / "conversations" / "10_conversation_b.json",
          {"conversations": {"conversation_1": {"person": "10 again", "chatbot": "ok"}}})
    ds = load_dataset(tmp_path)
    assert [c.id for c in ds.conversations] == ["1-conversation_1", "1-conversation_2", "2-conversation_1",
                                                "2-conversation_2", "10-conversation_1", "10-conversation_2",
                                                "10-b-conversation_1"]
    save_dataset(ds, tmp_path / "out", "tide")
    again = load_dataset(tmp_path / "out")
    assert [c.model_dump() for c in again.conversations] == [c.model_dump() for c in ds.conversations]


def test_wrong_shaped_metadata_fields_warn_and_are_kept(tmp_path: Path) -> None:
    _persona(tmp_path, "1", {"age": "unknown", "gender": ["f", "m"], "behaviors": [{"name": "x"}],
                             "demographics": {"sex": "female"}, "trauma": {"type": "combat", "age": 9}},
             {"c": {"person": "p", "chatbot": "c"}})
    problems = Problems()
    ds = read_tide(tmp_path, problems)
    (p,) = ds.personas
    assert not problems.errors
    fields = {w.field for w in problems.warnings}
    assert {"age", "gender", "behaviors"} <= fields
    assert all(w.file.endswith("1_metadata.json") for w in problems.warnings if w.field in fields - {"scenario"})
    # the source's own (wrong) gender is kept; an alias elsewhere does not stand in for it
    assert p.age is None and p.gender is None and p.behaviors == []
    assert p.attributes["age"] == "unknown" and p.attributes["gender"] == ["f", "m"]
    assert p.attributes["demographics"] == {"sex": "female"}
    assert p.trauma_type == "combat" and p.attributes["trauma"] == {"age": 9}  # age at trauma is not the age


@pytest.mark.parametrize(("meta", "expected"), [
    ({"age": "25-34"}, {"age": None, "age_group": "25-34"}),
    ({"age": "34-year-old", "trauma": {"trauma_type": "combat"}}, {"age": 34, "trauma_type": "combat"}),
    ({"trauma_info": {"type": "assault", "age": 12}}, {"trauma_type": "assault", "age": None}),
    ({"profile": {"age": {"value": 61, "group": "55-64"}}}, {"age": 61, "age_group": "55-64"}),
    ({"metadata": {"demographics": {"Sex": "Female"}}, "Behaviours": "avoidance, nightmares"},
     {"gender": "Female", "behaviors": ["avoidance", "nightmares"]}),
], ids=["age-range", "years-old", "trauma-info", "age-block", "deep"])
def test_metadata_variants_map_onto_fields(tmp_path: Path, meta: dict[str, Any], expected: dict[str, Any]) -> None:
    _persona(tmp_path, "1", meta, {"c": {"person": "p", "chatbot": "c"}})
    problems = Problems()
    (p,) = read_tide(tmp_path, problems).personas
    assert {k: getattr(p, k) for k in expected} == expected
    assert not problems.errors
    save_dataset(read_tide(tmp_path), tmp_path / "out", "tide")  # and the canonical write reads back the same
    assert read_tide(tmp_path / "out").personas == [p]


def test_scenario_objects_lists_of_conditions_and_descriptions(tmp_path: Path) -> None:
    _persona(tmp_path, "17", {"persona_id": "17", "persona": "A 45-year-old veteran",
                              "clinical": {"co_occurring_conditions": ["depression", "insomnia"]}},
             {"conversation_1": {"scenario": {"id": 3, "name": "Flashback", "intensity": "high"},
                                 "input": "help me", "output": "I'm here"}})
    problems = Problems()
    ds = read_tide(tmp_path, problems)
    (p,), (c,) = ds.personas, ds.conversations
    assert not problems.items  # a description under 'persona' is not a mismatched id
    assert p.attributes == {"persona": "A 45-year-old veteran", "co_occurring_condition": ["depression", "insomnia"]}
    assert (c.scenario_id, c.scenario, c.extra) == ("3", "Flashback", {"scenario_details": {"intensity": "high"}})
    assert (c.client_text, c.reference) == ("help me", "I'm here")
    save_dataset(ds, tmp_path / "j1", "jsonl")
    save_dataset(load_dataset(tmp_path / "j1"), tmp_path / "t", "tide")
    save_dataset(load_dataset(tmp_path / "t"), tmp_path / "j2", "jsonl")
    assert (tmp_path / "j1" / "conversations.jsonl").read_bytes() == (tmp_path / "j2" / "conversations.jsonl").read_bytes()
    assert (tmp_path / "j1" / "personas.jsonl").read_bytes() == (tmp_path / "j2" / "personas.jsonl").read_bytes()


def test_conflicting_aliases_keep_the_field_s_own_name_and_warn(tmp_path: Path) -> None:
    _persona(tmp_path, "1", {"sex": "f", "gender": "female", "demographics": {"age": 40}, "age": 41},
             {"c": {"person": "p", "chatbot": "c"}})
    problems = Problems()
    (p,) = read_tide(tmp_path, problems).personas
    assert (p.gender, p.age) == ("female", 41)
    assert p.attributes == {"sex": "f", "demographics": {"age": 40}}
    assert {w.field for w in problems.warnings} >= {"sex", "demographics.age"}
    save_dataset(read_tide(tmp_path), tmp_path / "out", "tide")
    assert read_tide(tmp_path / "out").personas == [p]


def test_unreadable_conversation_files_are_errors_naming_the_file(tmp_path: Path) -> None:
    _persona(tmp_path, "1", {"age": 30}, {"c1": {"question": "help", "answer": "here"}})
    report = validate_dataset(tmp_path)
    assert not report.ok
    (err,) = report.problems if len(report.problems) == 1 else [p for p in report.problems if p.severity == "error"]
    assert err.file.endswith("1_conversation.json") and err.where == "c1" and "no client message" in err.message
    with pytest.raises(DataError, match=r"1_conversation\.json"):
        load_dataset(tmp_path)
