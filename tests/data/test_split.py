"""Persona-level splits: reproducible, no leakage, stratified, exact sizes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tidekit.data import Conversation, Dataset, Persona, Turn, load_dataset, split_dataset
from tidekit.errors import ConfigError


def _synthetic(n_personas: int = 60, per: int = 4) -> Dataset:
    kinds = ["combat", "assault", "accident", "disaster"]
    personas = [Persona(id=str(i), trauma_type=kinds[i % 4]) for i in range(n_personas)]
    conversations = [
        Conversation(id=f"{p.id}-{j}", persona_id=p.id, scenario_id=f"s{j}",
                     turns=[Turn(role="client", text="hello")], reference="hi")
        for p in personas for j in range(per)
    ]
    return Dataset(personas=personas, conversations=conversations)


def _assignment(ds: Dataset) -> dict[str, str | None]:
    return {c.id: c.split for c in ds.conversations}


def test_same_seed_same_split_regardless_of_input_order() -> None:
    ds = _synthetic()
    shuffled = Dataset(personas=list(reversed(ds.personas)), conversations=list(reversed(ds.conversations)))
    a = split_dataset(ds, seed=11)
    b = split_dataset(shuffled, seed=11)
    assert _assignment(a.dataset) == _assignment(b.dataset)
    assert _assignment(split_dataset(ds, seed=12).dataset) != _assignment(a.dataset)


def test_no_persona_in_two_splits_and_sizes_exact_for_50_seeds() -> None:
    # one property over many seeds is one test: a loop, with the seed in every failure message
    for seed in range(50):
        result = split_dataset(_synthetic(), seed=seed, ratios=(0.8, 0.1, 0.1))
        splits_of: dict[str, str] = {}
        for c in result.dataset.conversations:
            assert c.split is not None, f"seed {seed}: {c.id} has no split"
            assert splits_of.setdefault(c.persona_id, c.split) == c.split, f"seed {seed}: persona {c.persona_id} leaks"
        sizes = Counter(splits_of.values())
        assert sizes == {"train": 48, "validation": 6, "test": 6}, f"seed {seed}: {sizes}"


def test_stratified_by_trauma_type() -> None:
    result = split_dataset(_synthetic(n_personas=80), seed=3)
    assert result.stratify_by == "trauma_type"
    persona = {p.id: p for p in result.dataset.personas}
    for split, ids in result.personas.items():
        per_kind = Counter(persona[i].trauma_type for i in ids)
        expected = {"train": 16, "validation": 2, "test": 2}[split]
        assert all(abs(n - expected) <= 1 for n in per_kind.values()), (split, per_kind)


def test_bad_ratios_are_config_errors() -> None:
    for bad in ("0.8,0.1", "0.5,0.5,0.5", "a,b,c", "-0.1,0.6,0.5"):
        with pytest.raises(ConfigError, match="ratios"):
            split_dataset(_synthetic(), ratios=bad)


def test_split_cli_writes_records_and_manifest(sample_dir: Path, tmp_path: Path,
                                               run_cli: Callable[..., object]) -> None:
    out = tmp_path / "split"
    result = run_cli("data", "split", sample_dir, "--out", out, "--seed", "5", "--to", "jsonl")
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    ds = load_dataset(out)
    assert all(c.split for c in ds.conversations)
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["seed"] == 5
    assert sum(v for k, v in manifest["counts"].items() if k.endswith("_conversations")) == 100
    assert [s["name"] for s in manifest["steps"]] == ["load", "split", "write"]
    splits = json.loads((out / "splits.json").read_text())
    listed = [pid for ids in splits["personas"].values() for pid in ids]
    assert sorted(listed) == sorted(p.id for p in ds.personas)


def test_unknown_stratify_field_is_an_error_naming_the_fields_there_are(
        sample_dir: Path, tmp_path: Path, run_cli: Callable[..., object]) -> None:
    with pytest.raises(ConfigError, match=r"--stratify-by 'foo': no persona has that field\. Fields there are: "
                                          r"age, age_group, gender, trauma_type, .*education"):
        split_dataset(load_dataset(sample_dir), stratify_by="foo")
    result = run_cli("data", "split", sample_dir, "--out", tmp_path / "s", "--stratify-by", "foo")
    assert result.code == 2 and "Fields there are" in result.out + result.err  # type: ignore[attr-defined]
    assert not (tmp_path / "s" / "splits.json").exists()
    # a field that exists (an attribute) stratifies, and is recorded
    ok = split_dataset(load_dataset(sample_dir), stratify_by="education")
    assert ok.stratify_by == "education"
