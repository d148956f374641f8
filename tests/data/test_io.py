"""Reading and writing the TIDE layout, JSONL and Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidekit.data import Dataset, load_dataset, save_dataset
from tidekit.errors import DataError


def _records(ds: Dataset) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    return ([p.model_dump() for p in ds.personas], [c.model_dump() for c in ds.conversations])


def _variant_folder(root: Path) -> Path:
    """A TIDE folder written with the key variants third-party loaders meet."""
    (root / "metadata").mkdir(parents=True)
    (root / "conversations").mkdir()
    (root / "metadata" / "1_metadata.json").write_text(json.dumps({
        "id": 1, "demographics": {"age": "34 years", "sex": "female"}, "trauma": "assault",
        "exhibited_behaviours": "nightmares, avoidance", "hobby": "chess"}))
    (root / "metadata" / "2_metadata.json").write_text(json.dumps({"client_age": 61, "gender": "male"}))
    (root / "conversations" / "1_conversation.json").write_text(json.dumps([
        {"scenario": "Nightmares", "person": "I keep waking up at 3am.", "chatbot": "That sounds exhausting."},
        {"emotion": "anger", "conversation": {"user": "I snapped at my kid.", "assistant": "Anger after trauma is common."}},
        {"scenario_id": "trust", "turns": [{"speaker": "client", "text": "Can I trust anyone?"},
                                            {"speaker": "assistant", "text": "That is a hard question."}]},
    ]))
    (root / "conversations" / "2_conversation_part1.json").write_text(json.dumps({
        "c1": {"scenario": "guilt", "client": "It was my fault.", "response": "Guilt is heavy.", "rating": 5}}))
    return root


def test_tolerant_reader_maps_key_variants(tmp_path: Path) -> None:
    ds = load_dataset(_variant_folder(tmp_path / "tide"))
    p1, p2 = ds.personas
    assert (p1.id, p1.age, p1.gender, p1.trauma_type) == ("1", 34, "female", "assault")
    assert p1.behaviors == ["nightmares", "avoidance"]
    assert p1.attributes == {"hobby": "chess"}  # unknown fields kept, emptied blocks dropped
    assert (p2.age, p2.gender) == (61, "male")
    by_id = {c.id: c for c in ds.conversations}
    assert by_id["1-01"].scenario_id == "nightmares" and by_id["1-01"].reference == "That sounds exhausting."
    assert by_id["1-02"].client_text == "I snapped at my kid." and by_id["1-02"].scenario_id == "anger"
    assert by_id["1-03"].reference == "That is a hard question." and len(by_id["1-03"].turns) == 1
    assert by_id["2-c1"].persona_id == "2" and by_id["2-c1"].extra == {"rating": 5}
    assert by_id["2-c1"].provenance.model_dump()["key"] == "c1"  # the file's own key, kept


@pytest.mark.parametrize("source", ["variants", "sample"])
def test_round_trip_tide_jsonl_parquet_tide(tmp_path: Path, source: str, sample_dir: Path) -> None:
    src = _variant_folder(tmp_path / "tide") if source == "variants" else sample_dir
    original = load_dataset(src)
    save_dataset(original, tmp_path / "j", "jsonl")
    save_dataset(load_dataset(tmp_path / "j"), tmp_path / "p", "parquet")
    save_dataset(load_dataset(tmp_path / "p"), tmp_path / "t", "tide")
    final = load_dataset(tmp_path / "t")
    assert _records(final) == _records(original)
    assert len(original.conversations) > 0


def test_sample_is_complete_and_labelled_synthetic(sample_dir: Path) -> None:
    ds = load_dataset(sample_dir)
    assert len(ds.personas) == 5 and len(ds.conversations) == 100
    assert all(p.attributes.get("synthetic") is True for p in ds.personas)
    assert all(n == 20 for n in __import__("collections").Counter(c.persona_id for c in ds.conversations).values())


def test_load_dataset_raises_data_error_listing_problems(tmp_path: Path) -> None:
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "1_metadata.json").write_text("{bad")
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path)
    assert "1_metadata.json" in str(info.value) and "tidekit data validate" in str(info.value)


def test_save_refuses_a_file_target(tmp_path: Path, sample_dir: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        save_dataset(load_dataset(sample_dir), target, "jsonl")
