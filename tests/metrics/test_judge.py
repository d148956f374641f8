"""The empathy judge against the mock backend with scripted answers, and its rubric."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tidekit.backends import Backend, ChatRequest, MockBackend, MockConfig
from tidekit.errors import DataError
from tidekit.metrics import (
    CRITERIA,
    JudgeConfig,
    JudgeItem,
    JudgeOptions,
    ParseFailure,
    aggregate_verdicts,
    build_rubric,
    judge_items,
    parse_verdict,
    run_judges,
)


def scripted_judge(answer: Callable[[ChatRequest], str | None], name: str = "fake") -> MockBackend:
    """The library's ``mock`` backend replying ``answer(request)`` (None: the error 'boom'); it
    records the requests and whether it was closed."""
    return MockBackend(MockConfig(model=name, batch_size=64, fail_message="boom"), respond=answer)


def _json(**scores: int) -> str:
    return json.dumps(scores)


GOOD = _json(emotion_recognition=4, distress_normalization=3, supportive_reflection=5, overall=4)
ITEMS = [JudgeItem(id=f"c{i}|sys", client_text="I can't sleep since the crash.", response="word " * (i + 1))
         for i in range(6)]


def test_fake_satisfies_the_backend_protocol() -> None:
    assert isinstance(scripted_judge(lambda r: GOOD), Backend)


@pytest.mark.parametrize("reply", [
    GOOD,
    f"Sure! Here is my rating:\n```json\n{GOOD}\n```",
    '{"Emotion recognition": "4", "distress normalization": 3.0, "supportive_reflection": "5/5", "overall_empathy": 4}',
    "emotion_recognition: 4\ndistress_normalization: 3\nsupportive_reflection: 5\noverall: 4",
])
def test_parser_reads_the_forms_judges_produce(reply: str) -> None:
    result = parse_verdict(reply)
    assert isinstance(result, dict) and set(result) == set(CRITERIA)


@pytest.mark.parametrize(("reply", "reason"), [
    ("", "empty"), ("The reply is quite empathetic.", "no JSON"),
    ('{"emotion_recognition": 9, "distress_normalization": 3, "supportive_reflection": 5, "overall": 4}',
     "emotion_recognition=9 is not an integer 1-5"),
    ('{"emotion_recognition": 4}', "missing distress_normalization"),
])
def test_parser_failures_say_why(reply: str, reason: str) -> None:
    result = parse_verdict(reply)
    assert isinstance(result, ParseFailure) and reason in result.reason


def test_rubric_quotes_the_empathy_model_in_the_requested_order() -> None:
    from tidekit.scenarios import load_empathy_model

    model = load_empathy_model()
    rubric = build_rubric()
    for factor in model.factors:
        assert factor.definition.strip() in rubric.system
        assert all(text in rubric.system for text in factor.anchors.values())
    assert model.overall_empathy.anchors[1] in rubric.system
    reversed_rubric = build_rubric(tuple(reversed(CRITERIA)))
    assert reversed_rubric.system.index("Overall empathy") < reversed_rubric.system.index("Emotion recognition")
    assert reversed_rubric.digest != rubric.digest


def test_unreadable_replies_are_retried_then_recorded() -> None:
    def answer(r: ChatRequest) -> str | None:
        if r.id.startswith("c0|"):
            return "I like it"  # never readable
        if r.id.startswith("c1|"):
            return GOOD if len(r.messages) > 2 else "Rating: great"  # readable after the retry prompt
        if r.id.startswith("c2|"):
            return None  # a backend error
        return GOOD

    fake = scripted_judge(answer)
    verdicts = {v.id: v for v in judge_items(ITEMS, fake.generate, "fake", JudgeOptions(max_retries=2))}
    assert verdicts["c0|sys"].scores is None and verdicts["c0|sys"].attempts == 3
    assert "no JSON" in (verdicts["c0|sys"].error or "") and verdicts["c0|sys"].raw == "I like it"
    assert verdicts["c1|sys"].scores == json.loads(GOOD) and verdicts["c1|sys"].attempts == 2
    assert not verdicts["c1|sys"].first_try_ok
    assert verdicts["c2|sys"].error == "boom"
    assert verdicts["c3|sys"].first_try_ok and verdicts["c3|sys"].attempts == 1
    retry = next(r for r in fake.requests if r.id == "c1|sys#1")
    assert retry.messages[-2].content == "Rating: great" and "could not read that" in retry.messages[-1].content


def _runner_for(fakes: dict[str, MockBackend]):  # type: ignore[no-untyped-def]
    def build(cfg: JudgeConfig):  # type: ignore[no-untyped-def]
        fake = fakes[cfg.label]
        return fake.generate, fake.identity, fake.close
    return build


def test_several_judges_are_averaged_with_identities_and_rates() -> None:
    low = _json(emotion_recognition=2, distress_normalization=2, supportive_reflection=2, overall=2)
    fakes = {"a": scripted_judge(lambda r: GOOD, "a"),
             "b": scripted_judge(lambda r: low if not r.id.startswith("c5|") else "??", "b")}
    run = run_judges([JudgeConfig(name="a"), JudgeConfig(name="b")], ITEMS, JudgeOptions(max_retries=1, bias_probe_n=0),
                     runner_for=_runner_for(fakes))
    assert [i.alias for i in run.identities] == ["a", "b"] and all(i.role == "judge" for i in run.identities)
    assert run.parse_failure_rate == {"a": 0.0, "b": pytest.approx(1 / 6)}
    means = aggregate_verdicts(run.verdicts)
    assert means["c0|sys"]["overall"] == 3.0 and means["c0|sys"]["n_judges"] == 2
    assert means["c5|sys"]["overall"] == 4.0 and means["c5|sys"]["n_judges"] == 1
    assert fakes["a"].closed and fakes["b"].closed


def test_verbosity_and_position_bias_are_measured() -> None:
    def by_length(r: ChatRequest) -> str:
        n = min(5, 1 + r.messages[1].content.count("word ") // 2)
        first = r.messages[0].content.index("(key")
        reversed_order = r.messages[0].content[first:].startswith('(key "overall")')
        er = min(5, n + 1) if reversed_order else n  # the reversed rubric inflates emotion recognition
        return _json(emotion_recognition=er, distress_normalization=n, supportive_reflection=n, overall=n)

    fake = scripted_judge(by_length)
    run = run_judges([JudgeConfig(name="len")], ITEMS, JudgeOptions(bias_probe_n=4),
                     runner_for=_runner_for({"len": fake}))
    bias = run.bias[0]
    assert bias.verbosity_spearman["overall"] > 0.9  # scores grow with length (ties keep it below 1)
    assert bias.position_n == 4
    assert bias.position_shift["distress_normalization"] == 0.0
    assert bias.position_shift["emotion_recognition"] is not None and bias.position_shift["emotion_recognition"] > 0


def test_ratings_and_bias_probe_go_to_the_engine_as_one_request_list_per_attempt() -> None:
    """The engine batches what it is given: the probe rides with the ratings, and so do retries."""
    calls: list[list[str]] = []
    fake = scripted_judge(lambda r: "??" if r.id.startswith("c1|") and r.id.endswith("#0") else GOOD)

    def runner(requests: list[ChatRequest]) -> list:  # type: ignore[type-arg]
        calls.append([r.id for r in requests])
        return fake.generate(requests)

    run = run_judges([JudgeConfig(name="j")], ITEMS, JudgeOptions(max_retries=1, bias_probe_n=3),
                     runner_for=lambda cfg: (runner, fake.identity, fake.close))
    assert len(calls) == 2  # the first attempt, then the retry of the one unreadable reply
    first = calls[0]
    assert len(first) == len(ITEMS) + 3 and len(set(first)) == len(first)
    assert sum("#set1#" in i for i in first) == 3  # the probe's requests, tagged apart from the ratings
    assert all(i.startswith("c1|") for i in calls[1])
    assert run.bias[0].position_n == 3 and len(run.verdicts) == len(ITEMS)


def test_too_many_parse_failures_fail_the_run_naming_items() -> None:
    fake = scripted_judge(lambda r: "no idea")
    with pytest.raises(DataError, match=r"judge 'bad' could not be read for 6 of 6 .*c0\|sys"):
        run_judges([JudgeConfig(name="bad")], ITEMS, JudgeOptions(max_retries=0, max_parse_failure_rate=0.5,
                                                                  bias_probe_n=0),
                   runner_for=_runner_for({"bad": fake}))


@pytest.mark.parametrize(("reply", "reason"), [
    # the scale echoed back as a range (what the issue saw read as 1,1,1,1)
    ("emotion_recognition: 1-5\ndistress_normalization: 1-5\nsupportive_reflection: 1-5\noverall: 1-5",
     "emotion_recognition='1-5' is not an integer 1-5"),
    ('{"emotion_recognition": <1-5>, "distress_normalization": <1-5>, "supportive_reflection": <1-5>, '
     '"overall": <1-5>}', "emotion_recognition='<1-5>' is not an integer 1-5"),
    ("emotion_recognition: 1 to 5\ndistress_normalization: 3\nsupportive_reflection: 5\noverall: 4",
     "emotion_recognition='1 to 5'"),
    # a non-integer is not truncated
    ('{"emotion_recognition": 4.5, "distress_normalization": 3, "supportive_reflection": 5, "overall": 4}',
     "emotion_recognition=4.5 is not an integer 1-5"),
    ("emotion_recognition: 4.5\ndistress_normalization: 3\nsupportive_reflection: 5\noverall: 4",
     "emotion_recognition='4.5'"),
    # a fraction on another scale is not read as its numerator
    ("emotion_recognition: 5/10\ndistress_normalization: 3\nsupportive_reflection: 5\noverall: 4",
     "emotion_recognition='5/10'"),
    ('{"emotion_recognition": "5/10", "distress_normalization": 3, "supportive_reflection": 5, "overall": 4}',
     "emotion_recognition='5/10'"),
    # off the scale
    ("emotion_recognition: 10\ndistress_normalization: 3\nsupportive_reflection: 5\noverall: 4",
     "emotion_recognition='10'"),
    ('{"emotion_recognition": 0, "distress_normalization": 3, "supportive_reflection": 5, "overall": 4}',
     "emotion_recognition=0 is not an integer 1-5"),
])
def test_parser_refuses_ranges_fractions_decimals_and_off_scale_numbers(reply: str, reason: str) -> None:
    result = parse_verdict(reply)
    assert isinstance(result, ParseFailure) and reason in result.reason, result


def test_parser_still_reads_a_score_with_words_after_it() -> None:
    reply = "emotion_recognition: 4 (names the fear)\ndistress_normalization: 3\nsupportive_reflection: 5/5\noverall: 4.0"
    assert parse_verdict(reply) == json.loads(GOOD)


def test_expected_score_is_the_probability_weighted_mean_over_the_scale() -> None:
    import math

    from tidekit.backends._protocol import TokenLogprob
    from tidekit.metrics import expected_scores

    def tok(text: str, top: list[tuple[str, float]] | None = None) -> TokenLogprob:
        return TokenLogprob(token=text, logprob=0.0, top=[(a, math.log(p)) for a, p in (top or [(text, 1.0)])])

    pieces = [tok('{"')]
    for i, key in enumerate(CRITERIA):
        pieces += [tok(("" if i == 0 else ', "') + key), tok('":'),
                   # the value token carries a leading space; " x" and "4." are not scale values
                   tok(" 4", [(" 4", 0.5), (" 2", 0.25), (" 5", 0.15), (" x", 0.05), (" 4.", 0.05)])]
    pieces.append(tok("}"))
    got = expected_scores(pieces)
    # (4 * 0.5 + 2 * 0.25 + 5 * 0.15) / 0.9, computed by hand
    assert got is not None and got["overall"] == pytest.approx(3.25 / 0.9)
    assert expected_scores(pieces[:-5]) is None  # the last criterion missing: none at all


def test_judge_requests_carry_the_verdict_schema_and_ask_for_token_probabilities() -> None:
    from tidekit.metrics import verdict_schema

    fake = scripted_judge(lambda r: GOOD)
    judge_items(ITEMS[:2], fake.generate, "fake", JudgeOptions())
    request = fake.requests[0]
    assert request.response_format is not None and request.response_format.json_schema == verdict_schema()
    assert request.logprobs == 5
    fake = scripted_judge(lambda r: GOOD)
    judge_items(ITEMS[:1], fake.generate, "fake", JudgeOptions(structured=False, top_logprobs=0))
    assert fake.requests[0].response_format is None and fake.requests[0].logprobs == 0


def test_a_judge_past_the_threshold_is_dropped_with_a_warning_and_constant_judges_flagged() -> None:
    fakes = {"ok": scripted_judge(lambda r: GOOD if not r.id.startswith("c0|") else _json(
                emotion_recognition=2, distress_normalization=3, supportive_reflection=5, overall=1), "ok"),
             "bad": scripted_judge(lambda r: GOOD if r.id.startswith("c0|") else "no idea", "bad")}
    run = run_judges([JudgeConfig(name="ok"), JudgeConfig(name="bad")], ITEMS,
                     JudgeOptions(max_retries=0, bias_probe_n=0, on_failure="drop"), runner_for=_runner_for(fakes))
    summaries = {s.judge: s for s in run.summaries}
    assert summaries["bad"].dropped and summaries["bad"].parse_failure_rate == pytest.approx(5 / 6)
    assert not summaries["ok"].dropped and summaries["ok"].constant == ["distress_normalization",
                                                                         "supportive_reflection"]
    assert any(w.startswith("DROPPED: judge 'bad'") for w in run.warnings)
    assert any("gave the same score to all 6 readable replies on distress_normalization" in w for w in run.warnings)
    assert {v.judge for v in run.usable()} == {"ok"}
    means = aggregate_verdicts(run.usable())
    assert means["c0|sys"]["n_judges"] == 1 and means["c0|sys"]["overall"] == 1.0
    with pytest.raises(DataError, match=r"judge 'bad' could not be read for 5 of 6 .*on_failure=drop"):
        run_judges([JudgeConfig(name="bad")], ITEMS, JudgeOptions(max_retries=0, bias_probe_n=0),
                   runner_for=_runner_for(fakes))


def test_score_tables_show_each_judge_columns_own_n_and_the_warnings(tmp_path, sample_dir) -> None:  # type: ignore[no-untyped-def]
    from tidekit.data import GenerationRecord, load_dataset, write_generations
    from tidekit.metrics import ScoreConfig, score

    ds = load_dataset(sample_dir)
    convs = ds.conversations[:6]
    write_generations(tmp_path / "gen", [GenerationRecord(conversation_id=c.id, system="m:zero_shot", model="m",
                                                          condition="zero_shot", output=f"reply {i}")
                                         for i, c in enumerate(convs)])
    unreadable = {convs[0].id, convs[1].id}
    fake = scripted_judge(lambda r: "??" if any(c in r.messages[1].content for c in
                                           [convs[0].client_text, convs[1].client_text]) else GOOD, "j")
    config = ScoreConfig(metrics=[{"name": "distinct"}], include_reference=False, safety=False,
                         judges=[JudgeConfig(name="j")], bootstrap={"n_resamples": 100},
                         judge=JudgeOptions(max_retries=0, bias_probe_n=0, max_parse_failure_rate=0.5))
    config = config.model_copy(update={"generations": [str(tmp_path / "gen")], "references": str(sample_dir)})
    result = score(config, out=tmp_path / "out", progress=False, judge_runner_for=_runner_for({"j": fake}))
    assert len(unreadable) == 2 and result.parse_failure_rate == {"j": pytest.approx(2 / 6)}
    md = (tmp_path / "out" / "aggregates.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| m:zero_shot"))
    assert "| 6 |" in row and "(n=4)" in row  # replies scored 6; the judge column says its own 4
    assert "constant" not in md and any("gave the same score" in w for w in result.warnings)
    assert "> **Warning:** judge 'j' gave the same score" in md
    summary = (tmp_path / "out" / "judge_summary.csv").read_text()
    assert "n_readable" in summary and ",4," in summary
