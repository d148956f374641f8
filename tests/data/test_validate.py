"""`tidekit data validate` on a corpus of bad inputs: exit 1, file and field named, no traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "corpus" / "bad"

# case -> substrings the report must contain (the file and the field or position)
EXPECTED: dict[str, list[str]] = {
    "absurd_size": ["1_conversations.json", "conversations[0].reference", "20,000"],
    "bad_encoding": ["1_conversations.json", "UTF-8", "byte"],
    "bad_split": ["1_conversations.json", "conversations[0].split", "[split]"],
    "duplicate_ids": ["duplicate_ids", "[id]", "'1-01' appears 2 times"],
    "empty_folder": ["empty_folder", "no dataset found"],
    "empty_text": ["1_conversations.json", "conversations[1].turns.0.text", "empty"],
    "ends_with_supporter": ["1_conversations.json", "conversations[0]", "last turn must be the client's"],
    "jsonl_bad_line": ["conversations.jsonl", "line 2", "malformed JSON"],
    "jsonl_unknown_persona": ["[persona_id]", "persona '9'"],
    "jsonl_wrong_type": ["conversations.jsonl", "line 1, turns", "valid list"],
    "malformed_json": ["1_conversations.json", "line 3, column 1", "malformed JSON"],
    "metadata_not_object": ["1_metadata.json", "JSON object"],
    "missing_conversations": ["1_metadata.json", "no conversation file"],
    "missing_metadata": ["1_conversations.json", "no metadata file"],
    "no_client_message": ["1_conversations.json", "conversations[0]", "no client message"],
    "not_a_list": ["1_conversations.json", "no list of conversations"],
    "unknown_speaker": ["1_conversations.json", "conversations[0].turns[0]", "[speaker]", "narrator"],
    "wrong_type_text": ["1_conversations.json", "[text]", "valid string"],
}


def test_corpus_and_expectations_match() -> None:
    assert sorted(p.name for p in CORPUS.iterdir() if p.is_dir()) == sorted(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_is_reported(case: str, run_cli: Callable[..., object]) -> None:
    result = run_cli("data", "validate", CORPUS / case)
    assert result.code == 1  # type: ignore[attr-defined]
    text = result.out + result.err  # type: ignore[attr-defined]
    text = " ".join(text.split())  # rich may wrap long lines
    for needle in EXPECTED[case]:
        assert needle in text, f"{needle!r} missing from:\n{text}"
    assert "Traceback" not in text


WARN = Path(__file__).parent / "corpus" / "warn"


def test_wrong_shape_metadata_is_a_warning_not_a_dead_load(run_cli: Callable[..., object]) -> None:
    """A known persona field of the wrong shape names the file and field; the load goes on."""
    result = run_cli("data", "validate", WARN / "wrong_type_age")
    assert result.code == 0, result.out  # type: ignore[attr-defined]
    text = " ".join(result.out.split())  # type: ignore[attr-defined]
    assert "warning:" in text and "1_metadata.json [age]" in text and "whole number" in text
    from tidekit.data import load_dataset

    (persona,) = load_dataset(WARN / "wrong_type_age").personas
    assert persona.age is None and persona.attributes["age"] == [1, 2]  # kept as given
    assert persona.gender == "male"


def test_every_problem_is_reported_at_once(tmp_path: Path, run_cli: Callable[..., object]) -> None:
    import shutil

    for case in ("empty_text", "metadata_not_object"):
        shutil.copytree(CORPUS / case, tmp_path / case)
    # two personas in one folder: rename the second persona's files
    dst = tmp_path / "both"
    shutil.copytree(tmp_path / "empty_text", dst)
    (tmp_path / "metadata_not_object" / "metadata" / "1_metadata.json").rename(dst / "metadata" / "2_metadata.json")
    (tmp_path / "metadata_not_object" / "conversations" / "1_conversations.json").rename(
        dst / "conversations" / "2_conversations.json")
    result = run_cli("data", "validate", dst, "--json")
    import json

    report = json.loads(result.out)  # type: ignore[attr-defined]
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    files = {p["file"].split("/")[-1] for p in errors}
    assert {"1_conversations.json", "2_metadata.json"} <= files


def test_clean_sample_exits_zero_with_summary(sample_dir: Path, run_cli: Callable[..., object]) -> None:
    result = run_cli("data", "validate", sample_dir)
    assert result.code == 0, result.out  # type: ignore[attr-defined]
    assert "5 personas, 100 conversations" in result.out  # type: ignore[attr-defined]
    assert "Per scenario" in result.out and "Length in words" in result.out  # type: ignore[attr-defined]


def test_subprocess_exit_code_and_no_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "tidekit", "data", "validate", str(CORPUS / "malformed_json")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "malformed JSON" in proc.stdout
