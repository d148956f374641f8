"""Hugging Face datasets both ways: save_to_disk folders, to_hf/from_hf, splits, Hub ids."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tidekit.data import detect_format, from_hf, load_dataset, save_dataset, split_dataset, to_hf
from tidekit.errors import DataError


def _records(ds: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [p.model_dump() for p in ds.personas], [c.model_dump() for c in ds.conversations]


def test_convert_to_hf_gives_80_rows_with_persona_columns_and_reads_back(
        release_dir: Path, tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    import datasets

    out = tmp_path / "hf"
    result = run_cli("data", "convert", release_dir, out, "--to", "hf")
    assert result.code == 0, result.err
    table = datasets.load_from_disk(str(out))
    assert isinstance(table, datasets.Dataset) and table.num_rows == 80
    assert {"conversation_id", "persona_id", "turns", "reference", "age", "gender", "trauma_type",
            "behaviors"} <= set(table.column_names)
    row = table[20]
    assert (row["conversation_id"], row["persona_id"], row["age"], row["gender"]) == \
        ("2-conversation_1", "2", 52, "male")
    assert json.loads(row["persona_attributes"])["education"] == "high school"
    assert detect_format(out) == "hf"
    assert run_cli("data", "validate", out).code == 0
    assert _records(load_dataset(out)) == _records(load_dataset(release_dir))
    # back to TIDE: a valid dataset again
    assert run_cli("data", "convert", out, tmp_path / "tide", "--to", "tide").code == 0
    assert run_cli("data", "validate", tmp_path / "tide").code == 0


def test_split_data_is_a_dataset_dict_and_a_rewrite_replaces_the_old_folder(
        release_dir: Path, tmp_path: Path) -> None:
    import datasets

    ds = load_dataset(release_dir)
    out = tmp_path / "hf"
    save_dataset(ds, out, "hf")  # unsplit first: a plain Dataset
    split = split_dataset(ds, seed=1, ratios=(0.5, 0.25, 0.25)).dataset
    save_dataset(split, out, "hf")  # the same folder again, now split
    table = datasets.load_from_disk(str(out))
    assert isinstance(table, datasets.DatasetDict)
    assert {k: v.num_rows for k, v in table.items()} == {"train": 40, "validation": 20, "test": 20}
    assert not list(out.glob("data-*.arrow")) and not (out / "state.json").exists()  # nothing stale left
    back = from_hf(table)  # rows come grouped by split; the records are the same
    assert sorted(back.conversations, key=lambda c: c.id) == sorted(split.conversations, key=lambda c: c.id)
    assert sorted(back.personas, key=lambda p: p.id) == sorted(split.personas, key=lambda p: p.id)
    assert _records(load_dataset(out)) == _records(back)


def test_from_hf_reads_a_chat_messages_dataset_and_split_names() -> None:
    import datasets

    rows = [{"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "I can't sleep"},
                          {"role": "assistant", "content": "That sounds hard."}], "persona_id": "7"}]
    ds = from_hf(datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}))
    (conv,) = ds.conversations
    assert (conv.client_text, conv.reference, conv.split, conv.persona_id) == \
        ("I can't sleep", "That sounds hard.", "test", "7")


def test_a_foreign_table_is_an_error_naming_its_columns() -> None:
    import datasets

    with pytest.raises(DataError, match=r"no 'turns' or 'messages' column .*columns: answer, question"):
        from_hf(datasets.Dataset.from_list([{"question": "q", "answer": "a"}]))


def test_persona_fields_that_disagree_across_rows_are_errors(release_dir: Path) -> None:
    import datasets

    table = to_hf(load_dataset(release_dir))
    ages = list(table["age"])
    ages[1] = 99
    table = table.remove_columns("age").add_column("age", ages)
    with pytest.raises(DataError, match=r"row 1.*persona '1' has age=99 here but 34 at row 0"):
        from_hf(table)
    assert isinstance(table, datasets.Dataset)


# --- Hub ids ---------------------------------------------------------------------------------------


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty Hugging Face cache for this test (the real huggingface_hub code reads it)."""
    import huggingface_hub.constants

    from tidekit.data._hf import _hub_folder

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    _hub_folder.cache_clear()
    yield cache
    _hub_folder.cache_clear()


def test_hub_id_offline_fails_saying_how_to_download(hub_cache: Path, run_cli: Callable[..., Any]) -> None:
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE  # the test suite runs offline
    with pytest.raises(DataError) as info:
        load_dataset("hf://yenopoya/TIDE")
    message = str(info.value)
    assert "hf://yenopoya/TIDE" in message and "HF_HUB_OFFLINE=1" in message
    assert "hf download yenopoya/TIDE --repo-type dataset" in message and "--data" in message
    result = run_cli("data", "validate", "hf://yenopoya/TIDE")
    assert result.code == 1 and "hf download" in " ".join(result.out.split())
    assert "Traceback" not in result.out + result.err


def test_hub_id_loads_a_cached_snapshot_offline(hub_cache: Path, release_dir: Path,
                                               run_cli: Callable[..., Any], tmp_path: Path) -> None:
    repo = hub_cache / "datasets--someone--tide-copy"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    shutil.copytree(release_dir, repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567")
    assert len(load_dataset("hf://someone/tide-copy").conversations) == 80
    assert len(load_dataset(Path("hf://datasets/someone/tide-copy")).conversations) == 80  # as a --data Path
    result = run_cli("data", "convert", "hf://someone/tide-copy", tmp_path / "j", "--to", "jsonl")
    assert result.code == 0, result.err
    with pytest.raises(DataError, match="not a Hub dataset id"):
        load_dataset("hf://just-a-name")


@pytest.mark.slow
def test_a_data_option_reads_an_hf_folder_end_to_end(release_dir: Path, tmp_path: Path,
                                                      run_cli: Callable[..., Any]) -> None:
    """'tidekit generate --data' on a split HF folder: the real SmolLM2 answers a test conversation."""
    assert run_cli("data", "split", release_dir, "--out", tmp_path / "hf", "--to", "hf", "--ratios", "0.5,0.25,0.25").code == 0
    test_ids = {c.id for c in load_dataset(tmp_path / "hf").by_split("test")}
    result = run_cli("generate", "--model", "smollm2-135m", "--data", tmp_path / "hf", "--split", "test",
                     "--out", tmp_path / "gen", "--limit", "1", "--max-new-tokens", "4", "--no-progress")
    assert result.code == 0, result.out + result.err
    (row,) = [json.loads(line) for line in (tmp_path / "gen" / "generations.jsonl").read_text().splitlines()]
    assert row["conversation_id"] in test_ids and row["output"]
