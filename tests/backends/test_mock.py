"""The ``mock`` backend: deterministic replies, schema-valid JSON, failure injection, a stable
identity, and the judge and engine paths running on it without weights."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tidekit.backends import (
    Backend,
    BackendConfig,
    ChatRequest,
    GenerationParams,
    MockBackend,
    MockConfig,
    load_backend,
)
from tidekit.backends._mock import schema_instance
from tidekit.backends._protocol import ResponseFormat


def _req(i: int, text: str = "I keep having nightmares about the crash.", **params: object) -> ChatRequest:
    return ChatRequest(id=f"r{i}", messages=[{"role": "system", "content": "Be kind."},  # type: ignore[list-item]
                                             {"role": "user", "content": text}],
                       params=GenerationParams(**params))  # type: ignore[arg-type]


def test_replies_are_deterministic_per_mode() -> None:
    echo = MockBackend(MockConfig()).generate([_req(0, seed=7)])[0]
    assert echo.text == "reply to 'I keep having nightm' seed=7" and echo.finish_reason == "stop"
    assert echo.prompt_tokens == 2 + 7 and echo.completion_tokens == 7
    fixed = MockBackend(MockConfig(reply="fixed", text="hello there")).generate([_req(0)])[0]
    assert fixed.text == "hello there"
    seeded = MockBackend(MockConfig(reply="seeded"))
    a, b, c = seeded.generate([_req(0, seed=1), _req(1, seed=1), _req(2, seed=2)])
    assert a.text == b.text != c.text  # the id does not matter; the seed does
    assert a.text == MockBackend(MockConfig(reply="seeded")).generate([_req(5, seed=1)])[0].text
    other = MockBackend(MockConfig(reply="seeded")).generate([_req(0, "Something else.", seed=1)])[0]
    assert other.text != a.text


def test_max_new_tokens_and_stop_strings_cut_the_reply() -> None:
    backend = MockBackend(MockConfig(reply="fixed", text="one two three four"))
    cut = backend.generate([_req(0, max_new_tokens=3)])[0]
    assert cut.text == "one two three" and cut.finish_reason == "length" and cut.completion_tokens == 3
    stopped = backend.generate([_req(0, stop=[" three"])])[0]
    assert stopped.text == "one two" and stopped.finish_reason == "stop"


def test_a_response_format_gets_json_valid_for_the_schema() -> None:
    from tidekit.metrics import CRITERIA, parse_verdict, verdict_schema

    fmt = ResponseFormat(name="verdict", json_schema=verdict_schema())
    request = _req(0).model_copy(update={"response_format": fmt})
    result = MockBackend(MockConfig()).generate([request])[0]
    verdict = json.loads(result.text or "")
    assert set(verdict) == set(CRITERIA) and all(v in (1, 2, 3, 4, 5) for v in verdict.values())
    assert parse_verdict(result.text or "") == verdict and result.structured is True
    plain = MockBackend(MockConfig(json_replies=False)).generate([request])[0]
    assert plain.text == "reply to 'I keep having nightm' seed=None" and plain.structured is False


def test_schema_instance_covers_refs_bounds_arrays_and_strings() -> None:
    schema = {"$defs": {"Level": {"enum": ["low", "high"]}}, "type": "object",
              "properties": {"level": {"$ref": "#/$defs/Level"}, "n": {"type": "integer", "minimum": 3, "maximum": 4},
                             "x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                             "tags": {"type": "array", "items": {"type": "string", "minLength": 6}, "minItems": 2},
                             "ok": {"type": "boolean"}, "maybe": {"type": ["null", "string"]},
                             "fixed": {"const": 9}}}
    value = schema_instance(schema, random.Random(0))
    assert value["level"] in ("low", "high") and value["n"] in (3, 4) and 0 <= value["x"] <= 1
    assert len(value["tags"]) == 2 and all(len(t) >= 6 for t in value["tags"])
    assert isinstance(value["ok"], bool) and isinstance(value["maybe"], str) and value["fixed"] == 9


def test_failures_can_be_injected_by_text_and_by_count() -> None:
    backend = MockBackend(MockConfig(fail_on="FAIL", fail_message="boom"))
    ok, bad = backend.generate([_req(0), _req(1, "please FAIL")])
    assert ok.error is None and bad.error == "boom" and bad.finish_reason == "error" and bad.text is None
    flaky = MockBackend(MockConfig(fail_times=2))
    attempts = [flaky.generate([_req(0)])[0] for _ in range(3)]
    assert [r.error for r in attempts] == ["simulated failure", "simulated failure", None]
    assert flaky.generate([_req(1, "another prompt")])[0].error == "simulated failure"  # counted per request


def test_identity_is_stable_and_changes_with_the_reply_settings() -> None:
    a = load_backend(BackendConfig(kind="mock", model="sys"))
    b = load_backend(BackendConfig(kind="mock", model="sys", batch_size=3, fail_times=1))
    assert a.identity == b.identity and a.identity.alias == "sys"
    assert a.identity.model_dump() == {"alias": "sys", "source": "mock:echo", "revision": a.identity.revision,
                                       "sha256": None, "role": None}
    assert a.identity.revision == "e34a5166991b2a25"  # pinned: a change would invalidate every mock cache
    tuned = load_backend(BackendConfig(kind="mock", model="sys", adapter="runs/adapter"))
    fixed = load_backend(BackendConfig(kind="mock", model="sys", reply="fixed"))
    assert len({a.identity.revision, tuned.identity.revision, fixed.identity.revision}) == 3


def test_it_is_a_batching_backend_that_records_its_calls() -> None:
    backend = load_backend(BackendConfig(kind="mock", batch_size=5))
    assert isinstance(backend, MockBackend) and isinstance(backend, Backend)
    assert backend.capabilities.batching and backend.capabilities.max_batch_size == 5
    backend.generate([_req(0), _req(1)])
    backend.close()
    assert backend.calls == [["r0", "r1"]] and [r.id for r in backend.requests] == ["r0", "r1"] and backend.closed


def test_respond_scripts_replies_and_none_is_a_failure() -> None:
    backend = MockBackend(MockConfig(fail_message="nope"), respond=lambda r: None if r.id == "r1" else r.id.upper())
    first, second = backend.generate([_req(0), _req(1)])
    assert first.text == "R0" and second.error == "nope"
    assert backend.identity.source is not None and backend.identity.source.startswith("mock:python:")


def test_the_engine_retries_mock_failures_from_its_cache(tmp_path: Path) -> None:
    from tidekit.generation import run_requests

    backend = MockBackend(MockConfig(fail_times=1))
    requests = [_req(i, f"prompt {i}") for i in range(3)]
    first = run_requests(backend, requests, cache=tmp_path / "c.sqlite", progress=False)
    assert all(r.error == "simulated failure" for r in first)
    second = run_requests(backend, requests, cache=tmp_path / "c.sqlite", progress=False)
    assert [r.text for r in second] == [f"reply to 'prompt {i}' seed=None" for i in range(3)]
    again = MockBackend(MockConfig(fail_times=1))  # a new process: same identity, so the cache answers
    third = run_requests(again, requests, cache=tmp_path / "c.sqlite", progress=False)
    assert [r.text for r in third] == [r.text for r in second] and again.calls == []


@pytest.mark.parametrize("reply", ["echo", "seeded"])
def test_the_judge_path_reads_mock_verdicts(reply: str) -> None:
    from tidekit.metrics import CRITERIA, JudgeConfig, JudgeItem, JudgeOptions, run_judges

    items = [JudgeItem(id=f"c{i}|sys", client_text="I can't sleep.", response="word " * (i + 1)) for i in range(4)]
    judge = JudgeConfig.model_validate({"name": "mock", "backend": {"kind": "mock", "reply": reply}})
    run = run_judges([judge], items, JudgeOptions(bias_probe_n=0))
    assert run.parse_failure_rate == {"mock": 0.0} and len(run.verdicts) == 4
    assert all(v.scores is not None and set(v.scores) == set(CRITERIA) for v in run.verdicts)
