"""The engine: cache, resumption, batching order, seeds, error threshold (fake backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation.conftest import FakeBackend
from tidekit.backends import ChatRequest, GenerationParams
from tidekit.data import Message, read_generations
from tidekit.generation import (
    ResultCache,
    RunStats,
    TooManyErrors,
    batch_plan,
    conversation_messages,
    generate,
    request_key,
    request_seed,
    run_requests,
    schedule_digest,
)
from tidekit.generation._dataset import GenerateConfig


def req(i: int, text: str, temperature: float = 0.0, seed: int | None = 0) -> ChatRequest:
    return ChatRequest(id=f"r{i}", messages=[Message(role="system", content="be kind"),
                                             Message(role="user", content=text)],
                       params=GenerationParams(max_new_tokens=8, temperature=temperature, seed=seed))


def test_results_keep_request_order_and_batches_are_longest_first(fake: FakeBackend) -> None:
    requests = [req(i, "x" * (i + 1)) for i in range(6)]
    results = run_requests(fake, requests, progress=False)
    assert [r.id for r in results] == [r.id for r in requests]
    assert fake.calls == [["r5", "r4", "r3", "r2"], ["r1", "r0"]]
    assert batch_plan(requests, 4) == [[5, 4, 3, 2], [1, 0]]


def test_cache_makes_a_rerun_compute_nothing(fake: FakeBackend, tmp_path: Path) -> None:
    requests = [req(i, f"message {i}") for i in range(5)]
    first = run_requests(fake, requests, cache=tmp_path / "c.sqlite", progress=False)
    again = FakeBackend()
    second = run_requests(again, requests, cache=tmp_path / "c.sqlite", progress=False)
    assert again.calls == []
    assert [r.text for r in first] == [r.text for r in second]


def test_cache_is_sqlite_wal(fake: FakeBackend, tmp_path: Path) -> None:
    import sqlite3

    run_requests(fake, [req(0, "a")], cache=tmp_path / "c.sqlite", progress=False)
    mode = sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_key_depends_on_model_messages_params_and_sampled_seed(fake: FakeBackend) -> None:
    base = req(0, "hello")
    other_model = FakeBackend(alias="other").identity
    keys = {
        request_key(fake.identity, base),
        request_key(other_model, base),
        request_key(fake.identity, req(0, "hello!")),
        request_key(fake.identity, base.model_copy(update={"params": GenerationParams(max_new_tokens=9)})),
        request_key(fake.identity, req(0, "hello", temperature=0.7, seed=1)),
        request_key(fake.identity, req(0, "hello", temperature=0.7, seed=2)),
    }
    assert len(keys) == 6
    # greedy decoding ignores the seed, so greedy runs with different seeds share the cache
    assert request_key(fake.identity, req(0, "hi", seed=1)) == request_key(fake.identity, req(0, "hi", seed=2))


def test_sampled_requests_get_their_own_seed(fake: FakeBackend) -> None:
    a, b = req(0, "same", temperature=0.8, seed=3), req(1, "same", temperature=0.8, seed=3)
    assert request_seed(a) != request_seed(b)
    assert request_seed(a) == request_seed(req(0, "other text", temperature=0.8, seed=3))
    assert request_seed(req(0, "greedy")) is None
    results = run_requests(fake, [a, b], progress=False)
    assert results[0].text is not None and f"seed={request_seed(a)}" in results[0].text


def test_identical_requests_are_computed_once(fake: FakeBackend) -> None:
    requests = [req(0, "same"), req(1, "same")]
    results = run_requests(fake, requests, progress=False)
    assert sum(len(c) for c in fake.calls) == 1
    assert [r.id for r in results] == ["r0", "r1"] and results[0].text == results[1].text


def test_failures_are_recorded_not_cached_and_retried(fake: FakeBackend, tmp_path: Path) -> None:
    requests = [req(0, "fine"), req(1, "please FAIL"), req(2, "also fine")]
    results = run_requests(fake, requests, cache=tmp_path / "c.sqlite", progress=False)
    assert results[1].error == "simulated failure" and results[0].text and results[2].text
    again = FakeBackend()
    stats = RunStats()
    run_requests(again, requests, cache=tmp_path / "c.sqlite", progress=False, stats=stats)
    # the fixed schedule: the failed request's whole batch is recomputed, its cached rows checked
    assert again.calls == [["r1", "r2", "r0"]]
    assert stats.checked == 2 and stats.mismatched == [] and stats.computed_batches == 1


def test_the_schedule_ignores_the_cache_and_checks_cached_rows(tmp_path: Path) -> None:
    """A rerun over a cache filled by another request list (here: a --limit run) recomputes every
    batch that has a missing request whole, with the composition of the uninterrupted run, and
    reports a cached row the recomputation does not reproduce, keeping the cached one."""
    requests = [req(i, "x" * (10 - i)) for i in range(6)]
    cache = tmp_path / "c.sqlite"
    run_requests(FakeBackend(), requests[:3], cache=cache, progress=False)  # r0, r1, r2 cached
    whole = FakeBackend()
    run_requests(whole, requests, progress=False)
    rerun = FakeBackend()
    stats = RunStats()
    run_requests(rerun, requests, cache=cache, progress=False, stats=stats)
    assert rerun.calls == whole.calls == [["r0", "r1", "r2", "r3"], ["r4", "r5"]]
    assert stats.batches == 2 and stats.computed_batches == 2 and stats.checked == 3 and not stats.mismatched
    assert stats.schedule == schedule_digest(requests, batch_plan(requests, 4))
    # a cached row its batch does not reproduce is reported and kept: r1 made stale, r2 and r3
    # removed, so the first batch is recomputed and the second (all cached) is not
    store = ResultCache(cache)
    key = request_key(rerun.identity, requests[1])
    store.put_many([(key, "fake", store.get_many([key])[key].model_copy(update={"text": "stale"}))])
    store._db.execute("DELETE FROM results WHERE key IN (?, ?)", [request_key(rerun.identity, r) for r in requests[2:4]])
    store.close()
    stats = RunStats()
    results = run_requests(FakeBackend(), requests, cache=cache, progress=False, stats=stats)
    assert stats.computed_batches == 1 and stats.checked == 2 and stats.mismatched == ["r1"]
    assert results[1].text == "stale"


def test_more_errors_than_allowed_stops_the_run_with_work_saved(tmp_path: Path) -> None:
    backend = FakeBackend(batch_size=1)
    requests = [req(0, "FAIL one long"), req(1, "FAIL two"), req(2, "ok")]
    with pytest.raises(TooManyErrors, match="max_errors=1"):
        run_requests(backend, requests, cache=tmp_path / "c.sqlite", progress=False, max_errors=1)
    assert len(ResultCache(tmp_path / "c.sqlite")) == 0
    assert backend.calls == [["r0"], ["r1"]]  # stopped before the third batch


def test_generate_writes_records_and_manifest(fake: FakeBackend, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    config = GenerateConfig(data=str(tiny_data), name="fake")
    result = generate(config, out=out, backend=fake, progress=False)
    records = read_generations(out)
    assert result.records == len(records) == 6 and result.errors == 0
    assert {r.system for r in records} == {"fake:zero_shot"}
    first = records[0]
    assert [m.role for m in first.messages] == ["system", "user"]
    assert "not a therapist" in first.messages[0].content and first.cache_key
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["counts"]["conversations"] == 6
    assert manifest["models"][0]["alias"] == "fake"
    # idempotent: a rerun takes everything from the cache and writes the same file
    before = (out / "generations.jsonl").read_text()
    again = generate(config, out=out, backend=FakeBackend(), progress=False)
    assert again.cached == 6 and (out / "generations.jsonl").read_text() == before
    # what decides the numbers is recorded: the schedule and the backend's numerics
    schedule = manifest["extra"]["schedule"]
    assert schedule["batch_size"] == 4 and schedule["batches"] == 2 and len(schedule["sha256"]) == 64
    assert manifest["extra"]["batch_invariant"] is True and "numerics" in manifest["extra"]


def test_check_reproducible_recomputes_in_fresh_batches(tiny_data: Path, tmp_path: Path) -> None:
    backend = FakeBackend()
    config = GenerateConfig(data=str(tiny_data), name="fake", check_reproducible=4)
    result = generate(config, out=tmp_path / "gen", backend=backend, progress=False)
    assert (result.check_checked, result.check_matched) == (4, 4)
    check = json.loads((tmp_path / "gen" / "manifest.json").read_text())["extra"]["reproducible_check"]
    assert check["batch_size"] == 2 and check["mismatched"] == []
    fresh = backend.calls[-2:]  # other batch-mates than in the run's schedule
    assert all(batch not in backend.calls[:-2] for batch in fresh)


def test_conversation_messages_map_roles(tiny_data: Path) -> None:
    from tidekit.data import Conversation, Turn

    conv = Conversation(id="c", persona_id="p", scenario_id="s",
                        turns=[Turn(role="client", text="a"), Turn(role="supporter", text="b"),
                               Turn(role="client", text="c")])
    assert [m.role for m in conversation_messages(conv, "sys")] == ["system", "user", "assistant", "user"]
