"""build_dataset end to end with a scripted teacher through the real engine: outputs, card,
review sheet, import-review, validation, and resuming from the cache."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tidekit.builder import BuildConfig, apply_review, build_dataset
from tidekit.data import load_dataset, validate_dataset
from tidekit.errors import ConfigError, DataError


def config(out: Path, **kw: object) -> BuildConfig:
    data = {"out": out, "personas": {"n": 3, "seed": 1},
            "scenarios": {"ids": ["survivor_guilt", "self_harm_urges", "avoiding_reminders"]}, **kw}
    return BuildConfig.model_validate(data)


@pytest.fixture
def built(tmp_path: Path, teacher_cls):  # type: ignore[no-untyped-def]
    teacher = teacher_cls(always_bad=["2-03"])
    result = build_dataset(config(tmp_path / "b"), backend=teacher, progress=False)
    return result, teacher, tmp_path / "b"


def test_build_writes_every_output_and_validates(built) -> None:  # type: ignore[no-untyped-def]
    result, _, out = built
    assert result.planned == 9 and result.conversations == 8 and result.dropped == 1
    for fmt in ("tide", "jsonl", "parquet"):
        report = validate_dataset(out / fmt)
        assert report.ok, [str(p) for p in report.problems]
    ds = load_dataset(out / "jsonl")
    assert {c.id for c in ds.conversations} == {f"{p}-{j:02d}" for p in "123" for j in (1, 2, 3)} - {"2-03"}
    card = (out / "DATASET_CARD.md").read_text(encoding="utf-8")
    for needle in ("Synthetic; not clinical advice", "scripted-teacher", "client_system", "meta.refusal",
                   "CC-BY-NC-4.0", "Intended use", "Limitations", "survivor_guilt"):
        assert needle in card, needle
    card_json = json.loads((out / "card.json").read_text(encoding="utf-8"))
    assert card_json["counts"]["dropped"] == 1 and len(card_json["prompt_hashes"]["client_system"]) == 16
    rejections = [json.loads(line) for line in (out / "rejections.jsonl").read_text().splitlines()]
    assert {r["outcome"] for r in rejections if r["conversation_id"] == "2-03"} == {"regenerated", "dropped"}
    assert "meta.refusal" in (out / "rejections.md").read_text(encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "finished" and manifest["models"][0]["role"] == "teacher"
    assert 0 <= manifest["extra"]["overhead_share"] <= 1
    with (out / "review.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and rows[0]["decision"] == "" and rows[0]["client_message"]


def test_rerun_replays_the_cache_and_calls_the_model_for_nothing(built, teacher_cls) -> None:  # type: ignore[no-untyped-def]
    result, _, out = built
    first = load_dataset(out / "jsonl").conversations
    first_files = {p.relative_to(out): p.read_bytes() for fmt in ("jsonl", "tide")
                   for p in sorted((out / fmt).rglob("*")) if p.is_file()}
    again = teacher_cls(always_bad=["2-03"])
    second = build_dataset(config(out), backend=again, progress=False)
    assert again.calls == []  # every request came from the cache
    assert second.conversations == result.conversations
    # the rerun wrote what the first run wrote: the same conversations, byte for byte
    assert load_dataset(out / "jsonl").conversations == first
    assert {p.relative_to(out): p.read_bytes() for fmt in ("jsonl", "tide")
            for p in sorted((out / fmt).rglob("*")) if p.is_file()} == first_files


def test_import_review_applies_accept_reject_edit(built, run_cli: Callable[..., object]) -> None:  # type: ignore[no-untyped-def]
    _, _, out = built
    with (out / "review.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_id = {r["conversation_id"]: r for r in rows}
    by_id["1-01"].update(decision="reject", reviewer="dr-x", notes="not realistic")
    by_id["1-02"].update(decision="edit", edited_reference="A clinician's better reply, with 988 for crisis support.")
    by_id["3-01"].update(decision="accept", reviewer="dr-x")
    sheet = out / "reviewed.csv"
    with sheet.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = run_cli("build", "import-review", out, sheet)
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    for fmt in ("tide", "jsonl", "parquet"):
        ds = load_dataset(out / fmt)
        ids = {c.id for c in ds.conversations}
        assert "1-01" not in ids and len(ids) == 7, fmt
        edited = next(c for c in ds.conversations if c.id == "1-02")
        assert edited.reference.startswith("A clinician's")  # type: ignore[union-attr]
        assert (edited.provenance.model_extra or {})["review"]["decision"] == "edit"
        assert validate_dataset(out / fmt).ok
    assert "Clinician review" in (out / "DATASET_CARD.md").read_text(encoding="utf-8")


def test_import_review_reports_every_bad_row(built) -> None:  # type: ignore[no-untyped-def]
    _, _, out = built
    sheet = out / "bad.csv"
    sheet.write_text("conversation_id,decision,edited_client_message,edited_reference\n"
                     "nope-01,accept,,\n1-01,maybe,,\n1-02,edit,,\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        apply_review(out, sheet)
    message = str(err.value)
    assert "unknown conversation id 'nope-01'" in message and "'maybe'" in message and "no edited text" in message


def test_bad_configs_fail_before_any_model_call(tmp_path: Path, teacher_cls, run_cli) -> None:  # type: ignore[no-untyped-def]
    teacher = teacher_cls()
    bad = config(tmp_path / "x", personas={"n": 3, "facets": {"gender": {"male": 0.5, "female": 0.1,
                                                                         "non_binary": 0.1}}},
                 scenarios={"ids": ["survivor_guilt", "no_such_scenario"]})
    with pytest.raises(ConfigError) as err:
        build_dataset(bad, backend=teacher, progress=False)
    assert "sum to 0.7000" in str(err.value) and "no_such_scenario" in str(err.value)
    assert teacher.calls == [] and not (tmp_path / "x").exists()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("out: x\npersonas: {n: 2, facets: {genderr: {male: 1.0}}}\nteacher: {model: smollm2-135m}\n",
                   encoding="utf-8")
    result = run_cli("build", cfg)
    assert result.code == 2 and "unknown facet 'genderr'" in result.err and "Traceback" not in result.err  # type: ignore[attr-defined]
    cfg.write_text("out: x\nteacher: {modle: smollm2-135m}\n", encoding="utf-8")
    result = run_cli("build", cfg, "--check")
    assert result.code == 2 and "unknown key 'teacher.modle'" in result.err  # type: ignore[attr-defined]
