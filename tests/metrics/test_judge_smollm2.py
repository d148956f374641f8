"""The empathy judge end to end with the real SmolLM2-135M through the generation engine: under
constrained decoding every reply is readable, with expected scores beside the most likely ones;
and ``tidekit judge validate`` on the 60 labelled pairs in ``data/judge_labels.csv``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from tidekit.data import GenerationRecord, load_dataset, write_generations

LABELS = Path(__file__).parent / "data" / "judge_labels.csv"


@pytest.mark.slow
def test_smollm2_judges_end_to_end_with_no_parse_failures(run_cli, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           sample_dir: Path) -> None:
    ds = load_dataset(sample_dir)
    convs = [c for c in ds.conversations if c.id in ("1-01", "2-19")]  # one low-risk, one high-risk scenario
    write_generations(tmp_path / "gen", [
        GenerationRecord(conversation_id=c.id, system="smollm2-135m:zero_shot", model="smollm2-135m",
                         condition="zero_shot", output="I'm sorry you're going through this. It sounds really hard.")
        for c in convs])
    out = tmp_path / "scores"
    res = run_cli("score", "-g", tmp_path / "gen", "--references", sample_dir, "--out", out,
                  "--metrics", "distinct", "--judge", "smollm2-135m", "judge.bias_probe_n=1",
                  "bootstrap.n_resamples=100")
    assert res.code == 0, res.err
    assert "judge smollm2-135m: parse-failure rate 0.0%" in res.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["judge"]["parse_failure_rate"]["smollm2-135m"] == 0.0
    summary = manifest["extra"]["judge"]["summaries"][0]
    assert summary["structured_rate"] == 1.0 and summary["score_source"] == "expected"
    judge = next(m for m in manifest["models"] if m["role"] == "judge")
    assert judge["alias"] == "smollm2-135m"
    verdicts = pd.read_parquet(out / "judge_scores.parquet")
    assert len(verdicts) == 4 and verdicts.parsed.all() and (verdicts.attempts == 1).all()
    assert verdicts.structured.all()
    assert verdicts[["judge_overall", "judge_emotion_recognition"]].stack().between(1, 5).all()
    expected = verdicts[[c for c in verdicts.columns if c.endswith("_expected")]]
    assert expected.notna().all().all() and expected.stack().between(1.0, 5.0).all()
    scores = pd.read_parquet(out / "scores.parquet")
    # the score columns hold the expected scores (the default), not the integers
    assert set(scores.judge_overall.round(6)) == set(verdicts.groupby(["conversation_id", "system"])
                                                     .judge_overall_expected.mean().round(6))
    assert (out / "judge_cache.sqlite").is_file() and (out / "judge_bias.csv").is_file()
    assert (out / "judge_summary.csv").is_file()


@pytest.mark.slow
def test_smollm2_judge_validate_on_labelled_pairs(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # the first 12 of the 60 labelled pairs keep the suite's time in bounds; the run on all 60
    # (the same command, figures in docs/scoring.md) takes minutes of CPU per dozen items here
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(LABELS.read_text().splitlines(keepends=True)[:13]))
    out = tmp_path / "validation"
    res = run_cli("judge", "validate", "--labels", labels, "--human", "total", "--out", out,
                  "bootstrap.n_resamples=1000")
    assert res.code == 0, res.err
    result = json.loads((out / "validation.json").read_text())
    assert result["n_items"] == 12 and result["parse_failure_rate"] == 0.0
    row = next(c for c in result["correlations"] if c["human"] == "total" and c["criterion"] == "overall"
               and c["score"] == result["table_score"])
    assert row["n"] == 12
    assert all(row[k] is not None and math.isfinite(row[k]) for k in ("spearman", "ci_low", "ci_high", "kendall"))
    assert row["ci_low"] <= row["spearman"] <= row["ci_high"]
    assert (out / "validation.png").is_file() and (out / "manifest.json").is_file()
