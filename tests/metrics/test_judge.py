"""The empathy judge against a scripted fake backend (the Backend protocol), and its rubric."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest

from tidekit._manifest import ModelIdentity
from tidekit.backends._protocol import Backend, Capabilities, ChatRequest, ChatResult
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


class FakeJudge:
    """A Backend whose reply is computed from the request by ``answer``; records requests."""

    def __init__(self, answer: Callable[[ChatRequest], str | None], name: str = "fake") -> None:
        self.identity = ModelIdentity(alias=name, source="memory")
        self.capabilities = Capabilities(batching=True, max_batch_size=64)
        self.answer = answer
        self.requests: list[ChatRequest] = []
        self.closed = False

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        self.requests.extend(requests)
        out = []
        for r in requests:
            text = self.answer(r)
            out.append(ChatResult(id=r.id, text=text, error=None if text is not None else "boom"))
        return out

    def close(self) -> None:
        self.closed = True


def _json(**scores: int) -> str:
    return json.dumps(scores)


GOOD = _json(emotion_recognition=4, distress_normalization=3, supportive_reflection=5, overall=4)
ITEMS = [JudgeItem(id=f"c{i}|sys", client_text="I can't sleep since the crash.", response="word " * (i + 1))
         for i in range(6)]


def test_fake_satisfies_the_backend_protocol() -> None:
    assert isinstance(FakeJudge(lambda r: GOOD), Backend)


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

    fake = FakeJudge(answer)
    verdicts = {v.id: v for v in judge_items(ITEMS, fake.generate, "fake", JudgeOptions(max_retries=2))}
    assert verdicts["c0|sys"].scores is None and verdicts["c0|sys"].attempts == 3
    assert "no JSON" in (verdicts["c0|sys"].error or "") and verdicts["c0|sys"].raw == "I like it"
    assert verdicts["c1|sys"].scores == json.loads(GOOD) and verdicts["c1|sys"].attempts == 2
    assert not verdicts["c1|sys"].first_try_ok
    assert verdicts["c2|sys"].error == "boom"
    assert verdicts["c3|sys"].first_try_ok and verdicts["c3|sys"].attempts == 1
    retry = next(r for r in fake.requests if r.id == "c1|sys#1")
    assert retry.messages[-2].content == "Rating: great" and "could not read that" in retry.messages[-1].content


def _runner_for(fakes: dict[str, FakeJudge]):  # type: ignore[no-untyped-def]
    def build(cfg: JudgeConfig):  # type: ignore[no-untyped-def]
        fake = fakes[cfg.label]
        return fake.generate, fake.identity, fake.close
    return build


def test_several_judges_are_averaged_with_identities_and_rates() -> None:
    low = _json(emotion_recognition=2, distress_normalization=2, supportive_reflection=2, overall=2)
    fakes = {"a": FakeJudge(lambda r: GOOD, "a"),
             "b": FakeJudge(lambda r: low if not r.id.startswith("c5|") else "??", "b")}
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

    fake = FakeJudge(by_length)
    run = run_judges([JudgeConfig(name="len")], ITEMS, JudgeOptions(bias_probe_n=4),
                     runner_for=_runner_for({"len": fake}))
    bias = run.bias[0]
    assert bias.verbosity_spearman["overall"] > 0.9  # scores grow with length (ties keep it below 1)
    assert bias.position_n == 4
    assert bias.position_shift["distress_normalization"] == 0.0
    assert bias.position_shift["emotion_recognition"] is not None and bias.position_shift["emotion_recognition"] > 0


def test_too_many_parse_failures_fail_the_run_naming_items() -> None:
    fake = FakeJudge(lambda r: "no idea")
    with pytest.raises(DataError, match=r"judge 'bad' could not be read for 6 of 6 .*c0\|sys"):
        run_judges([JudgeConfig(name="bad")], ITEMS, JudgeOptions(max_retries=0, max_parse_failure_rate=0.5,
                                                                  bias_probe_n=0),
                   runner_for=_runner_for({"bad": fake}))
