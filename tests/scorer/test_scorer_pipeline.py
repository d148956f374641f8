"""A trained scorer in the scoring pipeline (``tidekit score --scorer``) and beside the judges
(``tidekit judge validate --scorer``), and a rating export read as a labels file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scorer_synthetic import synthetic_rows, write_labels

from tidekit.data import GenerationRecord, load_dataset, write_generations
from tidekit.errors import ConfigError, DataError
from tidekit.metrics import MetricSpec, ScoreConfig, load_labels, score, validate_judge
from tidekit.metrics._scorers import LearnedScorerSpec, build_scorers


@pytest.mark.slow
def test_score_adds_one_column_per_label_with_cis_and_comparisons(tmp_path: Path, sample_dir: Path,
                                                                  trained_scorer: Path) -> None:
    ds = load_dataset(sample_dir)
    records = [GenerationRecord(conversation_id=c.id, system="flat:zero_shot", model="flat", condition="zero_shot",
                                output="The shop closes at six. Rain is expected later.")
               for c in ds.conversations[:40]]
    write_generations(tmp_path / "gen", records)
    config = ScoreConfig(generations=[str(tmp_path / "gen")], references=str(sample_dir),
                         metrics=[MetricSpec(name="length_ratio")], scorers=[LearnedScorerSpec(path=str(trained_scorer))],
                         bootstrap={"n_resamples": 200}, comparison_unit="conversation")
    result = score(config, out=tmp_path / "scores", progress=False)
    col = "scorer_warmth_warmth"
    assert col in result.metric_columns
    table = pd.read_parquet(tmp_path / "scores" / "scores.parquet")
    by_system = table.groupby("system")[col].mean()
    assert by_system["reference"] > by_system["flat:zero_shot"] + 0.5  # the sample's references are warm
    aggregates = pd.read_csv(tmp_path / "scores" / "aggregates.csv")
    assert {col} <= set(aggregates.metric) and aggregates[aggregates.metric == col].ci_low.notna().all()
    comparisons = pd.read_csv(tmp_path / "scores" / "comparisons.csv")
    assert ((comparisons.metric == col) & (comparisons.comparison == "vs_reference")).any()  # reference-free
    manifest = json.loads((tmp_path / "scores" / "manifest.json").read_text())
    assert any(m["role"] == "learned scorer" and m["sha256"] for m in manifest["models"])
    assert any(m.get("kind") == "learned" for m in manifest["extra"]["metrics"])


def test_a_folder_that_is_not_a_scorer_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a scorer folder"):
        build_scorers([], [LearnedScorerSpec(path=str(tmp_path))])
    with pytest.raises(ConfigError, match="unknown metric"):
        build_scorers([MetricSpec(name="nope")], [])


@pytest.mark.slow
def test_judge_validate_reports_the_scorer_beside_the_judge_on_one_table(tmp_path: Path, trained_scorer: Path,
                                                                        run_cli) -> None:  # type: ignore[no-untyped-def]
    labels = write_labels(tmp_path / "held_out.csv", synthetic_rows(12, seed=7))
    validation = validate_judge(labels, ["warmth"], tmp_path / "only-scorer",
                                ScoreConfig(scorers=[LearnedScorerSpec(path=str(trained_scorer))],
                                            bootstrap={"n_resamples": 200}), progress=False)
    assert not validation.judges  # a scorer alone: no default judge is run
    c = validation.find("warmth", "warmth", judge="scorer:warmth", score="prediction")
    assert c.n == 12 and c.spearman is not None and c.spearman > 0.6
    judged = pd.read_csv(tmp_path / "only-scorer" / "judged.csv")
    assert "scorer:warmth:warmth" in judged.columns

    result = run_cli("judge", "validate", "--labels", labels, "--human", "warmth", "--scorer", trained_scorer,
                     "--judge", "smollm2-135m", "--out", tmp_path / "both", "--no-progress")
    assert result.code == 0, result.err
    assert "smollm2-135m" in result.out and "scorer:warmth" in result.out  # one table, both rows
    saved = json.loads((tmp_path / "both" / "validation.json").read_text())
    kinds = {(c["judge"], c["score"]) for c in saved["correlations"]}
    assert ("scorer:warmth", "prediction") in kinds and any(j == "smollm2-135m" for j, _ in kinds)


def _export_rows() -> list[dict[str, object]]:
    """Rows shaped like 'tidekit rate export': one per rating, attention checks included."""
    rows: list[dict[str, object]] = []
    for rater, passed in (("R1", True), ("R2", True), ("R3", False)):
        for cid, system, score_ in (("c1", "a", 6), ("c1", "b", 2), ("c2", "a", 5)):
            rows.append({"rating_id": len(rows), "rater_id": rater, "item_id": f"{cid}{system}", "conversation_id": cid,
                         "persona_id": f"p-{cid}", "system": system, "is_attention_check": False,
                         "attention_passed": passed, "empathy": score_ + (rater == "R2"),
                         "context": f"message {cid}", "response": f"reply {cid}{system}"})
        rows.append({"rating_id": len(rows), "rater_id": rater, "item_id": "A01", "conversation_id": "",
                     "persona_id": "", "system": "attention_check", "is_attention_check": True,
                     "attention_passed": passed, "empathy": 4, "context": "check", "response": "check"})
    return rows


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_rating_export_is_a_labels_file_averaged_per_reply(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(_export_rows())
    path = tmp_path / f"ratings{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    rows = {r.id: r for r in load_labels(path, ["empathy"])}
    assert set(rows) == {"c1|a", "c1|b", "c2|a"}  # attention checks and R3 (failed one) left out
    assert rows["c1|a"].human["empathy"] == pytest.approx(6.5) and rows["c1|a"].weight == 2
    assert rows["c1|a"].group == "p-c1" and rows["c1|a"].context == "message c1"


def test_a_rating_export_without_texts_says_to_export_again(tmp_path: Path) -> None:
    frame = pd.DataFrame(_export_rows()).drop(columns=["context"])
    frame.to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(DataError, match="export again"):
        load_labels(tmp_path / "old.csv", ["empathy"])


def test_the_export_carries_the_texts_raters_saw() -> None:
    from tidekit.rating import EXPORT_COLUMNS

    assert {"context", "response"} <= set(EXPORT_COLUMNS)
