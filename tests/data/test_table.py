"""`tidekit data convert SRC out.jsonl|out.parquet|out.csv` writes one file, one row per conversation.

Users of `datasets`, pandas and jq expect a file at a name ending in .jsonl (issue #32); the
convert used to make a folder of that name. The files read back into identical records, and
pandas and `datasets` read them as tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tidekit.data import Dataset, load_dataset

SUFFIXES = (".jsonl", ".parquet", ".csv")


def _records(ds: Dataset) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return ([p.model_dump() for p in ds.personas], [c.model_dump() for c in ds.conversations])


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_convert_to_a_file_name_writes_one_file_that_reads_back_identical(
        tmp_path: Path, suffix: str, release_dir: Path, run_cli: Any) -> None:
    out = tmp_path / f"out{suffix}"
    result = run_cli("data", "convert", release_dir, out)
    assert result.code == 0, result.err
    assert out.is_file()  # not a folder named out.jsonl
    assert "one " + suffix[1:] + " file" in result.out
    assert _records(load_dataset(out)) == _records(load_dataset(release_dir))  # unicode, 4 layouts


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_the_file_is_a_plain_table_for_pandas(tmp_path: Path, suffix: str, sample_dir: Path, run_cli: Any) -> None:
    import pandas as pd

    out = tmp_path / f"out{suffix}"
    assert run_cli("data", "convert", sample_dir, out).code == 0
    frame = {".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet,
             ".csv": pd.read_csv}[suffix](out)
    original = load_dataset(sample_dir)
    assert len(frame) == len(original.conversations)
    assert list(frame["conversation_id"]) == [c.id for c in original.conversations]
    assert {"persona_id", "scenario_id", "turns", "reference", "age", "gender"} <= set(frame.columns)


def test_jsonl_file_loads_with_datasets_and_its_lines_are_json_objects(tmp_path: Path, sample_dir: Path,
                                                                       run_cli: Any) -> None:
    import datasets

    out = tmp_path / "tide.jsonl"
    assert run_cli("data", "convert", sample_dir, out).code == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["turns"][0]["role"] == "client"  # what jq '.turns[0].role' shows
    table = datasets.load_dataset("json", data_files=str(out), split="train")
    assert table.num_rows == len(rows) == 100


def test_messages_to_a_jsonl_file_writes_the_chat_file_itself(tmp_path: Path, sample_dir: Path,
                                                              run_cli: Any) -> None:
    out = tmp_path / "chat.jsonl"
    assert run_cli("data", "convert", sample_dir, out, "--to", "messages").code == 0
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["messages"][0]["role"] == "user"
    assert _records(load_dataset(out)) == _records(load_dataset(sample_dir))


def test_a_name_without_a_table_suffix_is_still_a_folder(tmp_path: Path, sample_dir: Path, run_cli: Any) -> None:
    assert run_cli("data", "convert", sample_dir, tmp_path / "out").code == 0
    assert (tmp_path / "out" / "conversations.jsonl").is_file()


@pytest.mark.parametrize(("name", "to", "said"), [
    ("out.jsonl", "tide", "--to tide writes a folder"),
    ("out.parquet", "jsonl", "--to jsonl writes a folder"),
    ("out.csv", "hf", "--to hf writes a folder"),
    ("out.jsonl", "sft", "--to sft writes a folder"),
])
def test_a_file_name_with_a_folder_layout_is_refused_saying_which(tmp_path: Path, sample_dir: Path, run_cli: Any,
                                                                  name: str, to: str, said: str) -> None:
    result = run_cli("data", "convert", sample_dir, tmp_path / name, "--to", to)
    assert result.code != 0
    assert said in result.err and "without a .jsonl, .parquet or .csv suffix" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / name).exists()


def test_an_existing_folder_with_a_table_name_is_refused(tmp_path: Path, sample_dir: Path, run_cli: Any) -> None:
    (tmp_path / "old.jsonl").mkdir()  # what an earlier tidekit made
    result = run_cli("data", "convert", sample_dir, tmp_path / "old.jsonl")
    assert result.code != 0 and "is a folder" in result.err


def test_a_bad_csv_cell_names_the_line_and_column(tmp_path: Path, sample_dir: Path, run_cli: Any) -> None:
    out = tmp_path / "out.csv"
    assert run_cli("data", "convert", sample_dir, out).code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('[{""role""', '[{role', 1)  # line 3: turns no longer JSON
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli("data", "validate", out)
    assert result.code == 1
    assert "line 3" in result.out and "turns" in result.out


def test_a_table_file_splits_into_a_folder(tmp_path: Path, sample_dir: Path, run_cli: Any) -> None:
    table = tmp_path / "tide.parquet"
    assert run_cli("data", "convert", sample_dir, table).code == 0
    result = run_cli("data", "split", table, "--out", tmp_path / "split", "--ratios", "0.6,0.2,0.2", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["format"] == "jsonl"  # a table's split is written as a record folder
    assert (tmp_path / "split" / "conversations.jsonl").is_file()
