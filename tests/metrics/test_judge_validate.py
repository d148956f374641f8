"""Judge validation against human labels: the labels file, the correlations (checked against
scipy), and a small labelled set with a planted relation judged by scripted judges."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from tidekit._manifest import ModelIdentity
from tidekit.backends._protocol import ChatRequest, ChatResult, TokenLogprob
from tidekit.errors import DataError
from tidekit.metrics import JudgeConfig, ScoreConfig, correlate, load_labels, validate_judge

DATA = Path(__file__).parent / "data" / "judge_labels.csv"

# A planted relation: the human score rises with how many validating phrases a reply holds.
PHRASES = ("makes sense", "sounds", "common", "not alone", "here to listen")


def _planted(n: int = 24) -> list[dict[str, object]]:
    rows = []
    for i in range(n):
        k = i % len(PHRASES) + 1
        reply = " ".join(f"It {p}." for p in PHRASES[:k]) + (" Okay." * (i % 3))
        rows.append({"id": f"r{i}", "context": "I keep reliving the crash.", "response": reply,
                     "total": 2 * k + (i % 2), "rater_b": k + (1 if i % 4 == 0 else 0)})
    return rows


def _write(tmp_path: Path, rows: Sequence[dict[str, object]], name: str = "labels.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _runner(answer):  # type: ignore[no-untyped-def]
    """A runner_for whose judge answers every request with ``answer(request) -> (text, logprobs)``."""
    def build(cfg: JudgeConfig):  # type: ignore[no-untyped-def]
        def run(requests: Sequence[ChatRequest]) -> list[ChatResult]:
            out = []
            for r in requests:
                text, logprobs = answer(r)
                out.append(ChatResult(id=r.id, text=text, logprobs=logprobs, structured=True))
            return out
        return run, ModelIdentity(alias=cfg.label, source="memory"), lambda: None
    return build


def _verdict(score: int) -> str:
    return json.dumps({"emotion_recognition": score, "distress_normalization": score,
                       "supportive_reflection": score, "overall": score})


def _follows_rubric(request: ChatRequest) -> tuple[str, list[TokenLogprob] | None]:
    reply = request.messages[1].content.split("Supportive reply to rate:")[1]
    k = sum(p in reply for p in PHRASES)
    return _verdict(k), None


def _constant(request: ChatRequest) -> tuple[str, list[TokenLogprob] | None]:
    return _verdict(1), None


def test_correlations_match_scipy_and_undefined_is_none() -> None:
    from scipy.stats import kendalltau, spearmanr

    x = [1, 2, 2, 3, 5, 4, 4, 1, 3, 5]
    y = [2.0, 1.5, 3.0, 3.5, 6.0, 4.0, 5.5, 1.0, 2.5, 7.0]
    got = correlate(x, y, n_resamples=500, seed=1)
    assert got["spearman"] == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert got["kendall"] == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)  # tau-b with ties
    assert got["ci_low"] < got["spearman"] < got["ci_high"] and got["n"] == 10
    constant = correlate([3] * 10, y)
    assert constant["spearman"] is None and constant["kendall"] is None and constant["ci_low"] is None
    assert "same score (3)" in constant["undefined_reason"]
    assert correlate([1, 2], [1, 2])["undefined_reason"].startswith("only 2 item(s)")


def test_a_rubric_following_judge_correlates_and_a_constant_one_is_undefined(tmp_path: Path) -> None:
    labels = _write(tmp_path, _planted())
    config = ScoreConfig(judges=[JudgeConfig(name="follows")], bootstrap={"n_resamples": 400})
    good = validate_judge(labels, ["total", "rater_b"], tmp_path / "good", config, runner_for=_runner(_follows_rubric))
    overall = good.find("total", "overall", score="argmax")
    assert overall.n == 24 and overall.spearman is not None and overall.spearman > 0.9
    assert overall.ci_low is not None and overall.ci_low > 0.5 and overall.kendall is not None
    assert good.parse_failure_rate == 0.0 and good.table_score == "argmax"  # no token probabilities given
    assert [(a.human_a, a.human_b) for a in good.human_agreement] == [("total", "rater_b")]
    assert good.human_agreement[0].spearman is not None and good.human_agreement[0].spearman > 0.8
    saved = json.loads((tmp_path / "good" / "validation.json").read_text())
    assert {"spearman", "ci_low", "ci_high", "n", "human", "criterion"} <= set(saved["correlations"][0])
    assert (tmp_path / "good" / "validation.png").is_file() and (tmp_path / "good" / "judged.csv").is_file()
    assert (tmp_path / "good" / "manifest.json").is_file()

    config = ScoreConfig(judges=[JudgeConfig(name="constant")], bootstrap={"n_resamples": 400})
    flat = validate_judge(labels, ["total"], tmp_path / "flat", config, runner_for=_runner(_constant))
    c = flat.find("total", "overall", score="argmax")
    assert c.spearman is None and c.kendall is None and c.ci_low is None and c.ci_high is None
    assert c.undefined_reason and "same score" in c.undefined_reason and c.n == 24
    assert flat.judges[0].constant == ["emotion_recognition", "distress_normalization", "supportive_reflection",
                                       "overall"]
    saved = json.loads((tmp_path / "flat" / "validation.json").read_text())
    assert all(row["spearman"] is None for row in saved["correlations"])  # null, never 0 or 1


def test_expected_scores_are_validated_beside_the_most_likely(tmp_path: Path) -> None:
    """A judge that always answers 1 but whose probability of higher scores tracks the reply:
    its argmax correlation is undefined, its expected-score correlation is not."""
    def answer(request: ChatRequest) -> tuple[str, list[TokenLogprob]]:
        reply = request.messages[1].content.split("Supportive reply to rate:")[1]
        k = sum(p in reply for p in PHRASES)
        p_high = 0.05 + 0.08 * k  # p(5) grows with the planted feature; 1 stays the most likely
        text = _verdict(1)
        tokens = []
        for piece in text.replace("1", "\x001\x00").split("\x00"):
            if piece == "1":
                tokens.append(TokenLogprob(token="1", logprob=math.log(1 - p_high),
                                           top=[("1", math.log(1 - p_high)), ("5", math.log(p_high))]))
            elif piece:
                tokens.append(TokenLogprob(token=piece, logprob=0.0, top=[(piece, 0.0)]))
        return text, tokens

    labels = _write(tmp_path, _planted())
    config = ScoreConfig(judges=[JudgeConfig(name="calibrated")], bootstrap={"n_resamples": 300})
    result = validate_judge(labels, ["total"], tmp_path / "v", config, runner_for=_runner(answer))
    assert result.table_score == "expected"
    assert result.find("total", score="argmax").spearman is None
    expected = result.find("total", score="expected")
    assert expected.spearman is not None and expected.spearman > 0.9


def test_the_labels_file_is_checked_with_every_problem_named(tmp_path: Path) -> None:
    rows = load_labels(DATA, ["total", "holistic"])
    assert len(rows) == 60 and rows[0].id == "p01a" and rows[0].human["total"] == 14.0
    bad = tmp_path / "bad.csv"
    bad.write_text("id,context,response,total\n"
                   "a,I can't sleep.,That sounds hard.,4\n"
                   "a,I can't sleep.,,five\n"
                   "c,I can't sleep.,Rest.,\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_labels(bad, ["total"])
    text = str(err.value)
    assert "line 3 [response]: empty response" in text and "line 3 [id]: id 'a' repeats line 2" in text
    assert "line 3 [total]: total='five' is not a number" in text
    missing = _write(tmp_path, [{"id": "x", "context": "c", "response": "r", "total": None}])
    assert load_labels(missing, ["total"])[0].human["total"] is None  # an empty label is missing, not an error
    with pytest.raises(DataError, match="no column 'rating'"):
        load_labels(bad, ["rating"])


def test_judge_validate_cli_reports_bad_labels_without_a_traceback(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "labels.csv"
    bad.write_text("id,context,response\n1,a,b\n", encoding="utf-8")
    res = run_cli("judge", "validate", "--labels", bad, "--human", "total", "--out", tmp_path / "out")
    assert res.code != 0 and "no column 'total'" in res.err and "Traceback" not in res.err


def test_the_report_shows_the_validation_beside_the_judge_scores(tmp_path: Path) -> None:
    from tidekit.reporting import ReportConfig, report

    run = tmp_path / "run"
    config = ScoreConfig(judges=[JudgeConfig(name="follows")], bootstrap={"n_resamples": 200})
    validate_judge(_write(tmp_path, _planted()), ["total", "rater_b"], run / "judge_validation", config,
                   runner_for=_runner(_follows_rubric))
    result = report(ReportConfig(run=str(run), analyze=False))
    html = result.html.read_text()
    assert "judge_validation" in result.figures and "judge_validation" in result.tables
    assert "Judge vs human labels" in html and "ceiling" in html
    assert html.index('id="metrics"') < html.index("Judge vs human labels") < html.index('id="human"')


def test_a_study_names_a_labels_file_only_with_judges(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from tidekit.study import StudyConfig
    from tidekit.study._study import build_stages

    base = {"name": "s", "out": str(tmp_path / "run"), "systems": [{"model": "smollm2-135m"}],
            "judge_validation": {"labels": str(DATA), "human": ["total"]}}
    with pytest.raises(ValidationError, match=r"scoring\.judges and scoring\.scorers are empty"):
        StudyConfig.model_validate(base)
    cfg = StudyConfig.model_validate(base | {"scoring": {"judges": [{"backend": {"model": "smollm2-135m"}}]}})
    stages = {s.name: s for s in build_stages(cfg)}
    assert "judge_validation" in stages and "judge_validation" in stages["report"].deps


def test_the_large_n_kendall_equals_the_pairwise_one() -> None:
    """correlate switches to scipy's O(n log n) Kendall above KENDALL_PAIRWISE_MAX_N: same tau-b, ties included."""
    import numpy as np

    from tidekit.metrics._validate import _kendall_each, _kendall_rows

    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(6, 80)).astype(float)  # many ties
    y = x + rng.integers(-1, 2, size=(6, 80))
    y[0] = 1.0  # a constant row: undefined (NaN) both ways
    pairwise, each = _kendall_rows(x, y), _kendall_each(x, y)
    assert np.isnan(pairwise[0]) and np.isnan(each[0])
    np.testing.assert_allclose(each[1:], pairwise[1:], rtol=0, atol=1e-12)
