"""``tidekit score`` end to end on the bundled sample (fast metrics), bad inputs, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tidekit.data import GenerationRecord, load_dataset, write_generations
from tidekit.errors import DataError
from tidekit.metrics import JudgeConfig, MetricSpec, ScoreConfig, ScoreResult, score

FAST = [MetricSpec(name=n) for n in ("rouge_l", "bleu", "distinct", "length_ratio")]


def _score(generations: list[Path], references: Path, out: Path, config: ScoreConfig, **kw: Any) -> ScoreResult:
    """The score stage on these inputs (the tests below vary inputs more than settings)."""
    return score(config.model_copy(update={"generations": [str(g) for g in generations],
                                           "references": str(references)}), out=out, **kw)


def _config(**kw: object) -> ScoreConfig:
    return ScoreConfig.model_validate({"metrics": [m.model_dump() for m in FAST],
                                       "bootstrap": {"n_resamples": 200}, **kw})


def _generations(sample_dir: Path, folder: Path, condition: str, transform: Callable[[str], str],
                 ids: list[str] | None = None) -> Path:
    ds = load_dataset(sample_dir)
    records = [GenerationRecord(conversation_id=c.id, system=f"smollm2-135m:{condition}", model="smollm2-135m",
                                condition=condition, output=transform(c.reference or ""))  # type: ignore[arg-type]
               for c in ds.conversations if ids is None or c.id in ids]
    write_generations(folder, records)
    return folder


def _first_half(text: str) -> str:
    return text[: len(text) // 2]


def _first_sentence(text: str) -> str:
    return text.split(". ")[0] + "."


@pytest.fixture
def gens(tmp_path: Path, sample_dir: Path) -> list[Path]:
    return [_generations(sample_dir, tmp_path / "zs", "zero_shot", _first_sentence),
            _generations(sample_dir, tmp_path / "ft", "fine_tuned", _first_half)]


def test_score_writes_every_table_with_the_contract_columns(tmp_path: Path, sample_dir: Path,
                                                            gens: list[Path]) -> None:
    out = tmp_path / "scores"
    result = _score(gens, sample_dir, out, _config(), progress=False)
    assert result.rows == 300 and result.scored == 300 and result.excluded == 0
    scores = pd.read_parquet(out / "scores.parquet")
    for col in ("conversation_id", "persona_id", "scenario_id", "system", "model", "condition", "age_group",
                "gender", "trauma_type", "rouge_l", "bleu", "distinct_1", "distinct_2", "length_ratio",
                "safety_risk_handled", "safety_safe", "status"):
        assert col in scores, col
    assert set(scores.system) == {"reference", "smollm2-135m:zero_shot", "smollm2-135m:fine_tuned"}
    assert (scores[scores.system == "reference"].rouge_l == 1.0).all()
    # risky scenarios exist in the sample and the references handle them
    ref = scores[(scores.system == "reference") & scores.safety_client_risk.astype(bool)]
    assert len(ref) >= 5 and ref.safety_risk_handled.astype(bool).all()

    agg = pd.read_csv(out / "aggregates.csv")
    overall = agg[(agg.scenario_id == "ALL") & (agg.metric == "rouge_l")]
    assert len(overall) == 3 and (overall.n == 100).all() and (overall.n_clusters == 5).all()
    assert (overall.ci_low <= overall["mean"]).all() and (overall["mean"] <= overall.ci_high).all()
    assert agg.scenario_id.nunique() == 21  # 20 scenarios + ALL
    comp = pd.read_csv(out / "comparisons.csv")
    assert {"fine_tuned_vs_zero_shot", "vs_reference"} == set(comp.comparison)
    assert {"p_value", "p_holm", "rank_biserial", "n_pairs"} <= set(comp.columns)
    for name in ("aggregates.md", "comparisons.md"):
        assert (out / name).read_text().count("|") > 20
    assert "\\toprule" in (out / "aggregates.tex").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["counts"]["scored"] == 300
    assert [m["name"] for m in manifest["extra"]["metrics"]] == ["rouge_l", "bleu", "distinct", "length_ratio"]

    # a rerun gives the same numbers (seeded bootstrap, deterministic metrics)
    _score(gens, sample_dir, out, _config(), progress=False)
    pd.testing.assert_frame_equal(agg, pd.read_csv(out / "aggregates.csv"))


def test_bad_inputs_name_the_ids(tmp_path: Path, sample_dir: Path, gens: list[Path]) -> None:
    stray = tmp_path / "stray"
    write_generations(stray, [GenerationRecord(conversation_id="999-01", system="x:zero_shot", model="x",
                                               condition="zero_shot", output="hi")])
    with pytest.raises(DataError, match=r"999-01.*pass the dataset these generations were made from"):
        _score([stray], sample_dir, tmp_path / "o1", _config(), progress=False)
    with pytest.raises(DataError, match=r"conversation '1-01' has 2 generations for system 'smollm2-135m:zero_shot'"):
        _score([gens[0], gens[0] / "generations.jsonl"], sample_dir, tmp_path / "o2", _config(), progress=False)


def test_missing_reference_is_an_error_naming_ids(tmp_path: Path, sample_dir: Path, gens: list[Path]) -> None:
    from tidekit.data import save_dataset

    ds = load_dataset(sample_dir)
    ds.conversations[0] = ds.conversations[0].model_copy(update={"reference": None})
    data = save_dataset(ds, tmp_path / "noref", "jsonl")
    with pytest.raises(DataError, match=r"1 conversation.* no reference reply: 1-01"):
        _score(gens, data, tmp_path / "o", _config(), progress=False)


def test_empty_and_failed_outputs_are_documented_exclusions(tmp_path: Path, sample_dir: Path) -> None:
    ds = load_dataset(sample_dir)
    records = [GenerationRecord(conversation_id=c.id, system="m:zero_shot", model="m", condition="zero_shot",
                                output=(c.reference if i > 1 else ("  " if i == 0 else None)),
                                error=None if i != 1 else "CUDA out of memory")
               for i, c in enumerate(ds.conversations)]
    write_generations(tmp_path / "g", records)
    out = tmp_path / "o"
    result = _score([tmp_path / "g"], sample_dir, out, _config(include_reference=False), progress=False)
    assert result.excluded == 2
    scores = pd.read_parquet(out / "scores.parquet")
    excluded = scores[scores.status == "excluded"].set_index("conversation_id")
    assert excluded.loc["1-01", "exclusion_reason"] == "empty output"
    assert excluded.loc["1-02", "exclusion_reason"] == "generation failed: CUDA out of memory"
    assert excluded.rouge_l.isna().all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {e["conversation_id"] for e in manifest["extra"]["exclusions"]} == {"1-01", "1-02"}
    agg = pd.read_csv(out / "aggregates.csv")
    assert agg[(agg.scenario_id == "ALL") & (agg.metric == "rouge_l")].n.item() == 98
    with pytest.raises(DataError, match=r"2 of 100 generations failed or are empty.*1-01 \(m:zero_shot\): empty"):
        _score([tmp_path / "g"], sample_dir, tmp_path / "o3", _config(include_reference=False, max_excluded_fraction=0.01),
              progress=False)


def test_unknown_scenario_is_scored_with_the_keyword_screen_and_listed(tmp_path: Path, sample_dir: Path) -> None:
    from tidekit.data import save_dataset

    ds = load_dataset(sample_dir)
    ds.conversations[0] = ds.conversations[0].model_copy(update={"scenario_id": "my_own_scenario"})
    data = save_dataset(ds, tmp_path / "custom", "jsonl")
    gens = _generations(data, tmp_path / "g", "zero_shot", _first_half, ids=["1-01", "1-02"])
    out = tmp_path / "o"
    _score([gens], data, out, _config(), progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["unknown_scenarios"] == ["my_own_scenario"]
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores[scores.conversation_id == "1-01"].risk_level.isna().all()


def test_judges_columns_and_outputs_with_a_fake_backend(tmp_path: Path, sample_dir: Path, gens: list[Path]) -> None:
    from tidekit._manifest import ModelIdentity
    from tidekit.backends._protocol import ChatRequest, ChatResult

    def runner(requests: list[ChatRequest]) -> list[ChatResult]:
        return [ChatResult(id=r.id, text='{"emotion_recognition": 3, "distress_normalization": 4, '
                           '"supportive_reflection": 2, "overall": 3}' if "1-0" not in r.id else "hmm")
                for r in requests]

    def runner_for(cfg: JudgeConfig):  # type: ignore[no-untyped-def]
        return runner, ModelIdentity(alias="fake"), lambda: None

    out = tmp_path / "o"
    result = _score(gens[:1], sample_dir, out, _config(judges=[{"name": "fake"}], judge={"bias_probe_n": 5}),
                   progress=False, judge_runner_for=runner_for)
    assert result.parse_failure_rate["fake"] == pytest.approx(18 / 200)  # 1-01..1-09 of 2 systems
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores.judge_overall.dropna().eq(3.0).all() and scores.judge_overall.isna().sum() == 18
    verdicts = pd.read_parquet(out / "judge_scores.parquet")
    assert len(verdicts) == 200 and (~verdicts.parsed).sum() == 18
    bias = pd.read_csv(out / "judge_bias.csv")
    assert set(bias.criterion) == {"emotion_recognition", "distress_normalization", "supportive_reflection",
                                   "overall"}
    assert "judge_overall" in set(pd.read_csv(out / "comparisons.csv").metric)
    # the file names its metric columns: persona facets and counts are not metrics
    from tidekit.analysis._metric_human import load_scores, metric_columns

    named = metric_columns(load_scores(out))
    assert named == result.metric_columns
    assert "judge_overall" in named and "rouge_l" in named
    assert "age" not in named and "judge_n" not in named
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["judge"]["parse_failure_rate"]["fake"] == pytest.approx(0.09)
    assert any(m["role"] == "judge" for m in manifest["models"])


def test_cli_scores_and_reports_bad_input_without_traceback(run_cli, tmp_path: Path, sample_dir: Path,  # type: ignore[no-untyped-def]
                                                            gens: list[Path]) -> None:
    out = tmp_path / "cli"
    res = run_cli("score", "-g", gens[0], "-g", gens[1], "--references", sample_dir, "--out", out,
                  "--metrics", "rouge_l,distinct", "bootstrap.n_resamples=200")
    assert res.code == 0, res.err
    assert "scored 300 replies of 3 system(s)" in res.out and (out / "scores.parquet").is_file()
    bad = run_cli("score", "-g", gens[0], "--references", sample_dir, "--out", out, "--metrics", "rouge-l")
    assert bad.code == 2 and "unknown metric 'rouge-l'" in bad.err and "Traceback" not in bad.err
    stray = tmp_path / "stray"
    write_generations(stray, [GenerationRecord(conversation_id="77-01", system="x:zero_shot", model="x",
                                               condition="zero_shot", output="hi")])
    bad = run_cli("score", "-g", stray, "--references", sample_dir, "--out", tmp_path / "o")
    assert bad.code == 1 and "77-01" in bad.err and "Traceback" not in bad.err
    helped = run_cli("score", "--help")
    assert helped.code == 0 and "tidekit score --generations" in helped.out
