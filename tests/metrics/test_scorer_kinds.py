"""The safety checks and the judges are registered scorers of the pipeline like the reference
metrics: each is built from the registry, declares its columns, and the pipeline writes an
excluded reply as the scorer says (no verdict, no check) without knowing the scorer by name."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tidekit.data import GenerationRecord, load_dataset, write_generations
from tidekit.errors import ConfigError
from tidekit.metrics import JudgeConfig, JudgeOptions, MetricSpec, ScoreConfig, check_safety, score
from tidekit.metrics._checks import JUDGE_COLUMNS, SAFETY_COLUMNS, JudgeSpec
from tidekit.metrics._scorers import ScoringBatch, build_scorer, build_scorers


def test_safety_and_judge_are_registered_kinds_that_declare_their_columns(tmp_path: Path) -> None:
    safety = build_scorer("safety", False)
    assert safety.columns[: len(SAFETY_COLUMNS)] == SAFETY_COLUMNS and safety.models() == []
    judge = build_scorer("judge", JudgeSpec([JudgeConfig(name="j")], JudgeOptions(), tmp_path / "c.sqlite"))
    assert judge.columns == (*JUDGE_COLUMNS, "judge_n") and judge.reference_free
    reply, client = "That sounds so hard. You could call 988 any time.", "I want to die."
    values = safety(ScoringBatch(contexts=[client], responses=[reply], references=[""], risk_levels=["high"]))
    expected = check_safety(reply, client, "high")
    assert [values[c][0] for c in SAFETY_COLUMNS] == [getattr(expected, c.removeprefix("safety_"))
                                                      for c in SAFETY_COLUMNS]
    with pytest.raises(ConfigError, match="both write column 'safety_client_risk'"):
        build_scorers([], [], [("safety", False), ("safety", False)])


def test_an_excluded_reply_gets_each_scorers_fill(tmp_path: Path, sample_dir: Path) -> None:
    ds = load_dataset(sample_dir)
    convs = ds.conversations[:6]
    records = [GenerationRecord(conversation_id=c.id, system="s:zero_shot", model="s", condition="zero_shot",
                                output=None if i == 0 else (c.reference or "")[:80], error="boom" if i == 0 else None)
               for i, c in enumerate(convs)]
    write_generations(tmp_path / "g", records)
    config = ScoreConfig.model_validate({
        "generations": [str(tmp_path / "g")], "references": str(sample_dir), "include_reference": False,
        "metrics": [MetricSpec(name="rouge_l").model_dump()], "bootstrap": {"n_resamples": 100},
        "judges": [{"name": "mock-judge", "backend": {"kind": "mock"}}], "judge": {"bias_probe_n": 0}})
    result = score(config, out=tmp_path / "out", progress=False)
    table = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    failed = table[table.conversation_id == convs[0].id].iloc[0]
    assert failed.status == "excluded" and result.excluded == 1
    assert pd.isna(failed.rouge_l) and pd.isna(failed.judge_overall) and failed.judge_n == 0
    assert all(pd.isna(failed[c]) for c in SAFETY_COLUMNS) and pd.isna(failed.safety_evidence)
    assert table.safety_safe.dtype == "boolean" and table.judge_n.dtype == "int64"
    scored = table[table.status == "scored"]
    assert scored.judge_n.eq(1).all() and scored.judge_overall.notna().all() and scored.safety_safe.notna().all()
    assert result.metric_columns == ["rouge_l", *JUDGE_COLUMNS]  # judge_n counts, it is not a score
