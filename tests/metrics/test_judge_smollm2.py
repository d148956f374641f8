"""The empathy judge end to end with the real SmolLM2-135M through the generation engine."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tidekit.data import GenerationRecord, load_dataset, write_generations


@pytest.mark.slow
def test_smollm2_judges_end_to_end_and_reports_its_parse_failure_rate(run_cli, tmp_path: Path,  # type: ignore[no-untyped-def]
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
                  "judge.max_new_tokens=64", "judge.max_retries=1", "bootstrap.n_resamples=100")
    assert res.code == 0, res.err
    assert "judge smollm2-135m: parse-failure rate" in res.out
    manifest = json.loads((out / "manifest.json").read_text())
    rate = manifest["extra"]["judge"]["parse_failure_rate"]["smollm2-135m"]
    assert 0.0 <= rate <= 1.0
    judge = next(m for m in manifest["models"] if m["role"] == "judge")
    assert judge["alias"] == "smollm2-135m"
    verdicts = pd.read_parquet(out / "judge_scores.parquet")
    assert len(verdicts) == 4 and verdicts.raw.notna().all()  # the model answered every item
    assert verdicts.attempts.between(1, 2).all()
    parsed = verdicts[verdicts.parsed]
    assert parsed[["judge_overall", "judge_emotion_recognition"]].stack().between(1, 5).all()
    assert (out / "judge_cache.sqlite").is_file() and (out / "judge_bias.csv").is_file()
