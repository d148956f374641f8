"""The generation loop with a scripted teacher: regeneration, drop / keep-flagged, assembly."""

from __future__ import annotations

from collections.abc import Sequence

from tidekit.backends._protocol import Backend, ChatRequest, ChatResult
from tidekit.builder import (
    BuildConfig,
    GenerationStats,
    RejectionRecord,
    generate_conversations,
    plan_build,
)
from tidekit.personas import PersonaConfig


def direct(backend: Backend, requests: Sequence[ChatRequest], label: str) -> list[ChatResult]:
    return backend.generate(requests)


def small(**kw: object) -> BuildConfig:
    data = {"personas": PersonaConfig(n=3, seed=1), "scenarios": {"ids": ["survivor_guilt", "self_harm_urges"]},
            **kw}
    return BuildConfig.model_validate(data)


def test_rejected_turns_are_regenerated_with_new_seeds_and_higher_temperature(teacher_cls) -> None:  # type: ignore[no-untyped-def]
    teacher = teacher_cls()
    stats, rejections = GenerationStats(), []  # type: ignore[var-annotated]
    plan = plan_build(small())
    seen: list[ChatRequest] = []

    def spy(backend: Backend, requests: Sequence[ChatRequest], label: str) -> list[ChatResult]:
        seen.extend(requests)
        return backend.generate(requests)

    ds = generate_conversations(plan, teacher, spy, rejections, stats)
    assert len(ds.conversations) == 6 and stats.conversations_dropped == 0
    retried = [r for r in seen if r.id.endswith("/1")]
    assert retried, "some first attempts are refusals by design"
    first = {r.id.rsplit("/", 1)[0]: r for r in seen if r.id.endswith("/0")}
    for r in retried:
        r0 = first[r.id.rsplit("/", 1)[0]]
        assert r.params.seed != r0.params.seed and r.params.temperature >= 0.8
    # only the scripted refusals are rejected (a refusal may also be too short, etc.)
    assert all("meta.refusal" in r.codes for r in rejections)
    assert stats.reasons["meta.refusal"] == len(rejections) == stats.turns_rejected
    assert all(isinstance(r, RejectionRecord) and r.outcome == "regenerated" for r in rejections)
    conv = ds.conversations[0]
    assert conv.turns[-1].role == "client" and conv.reference and conv.provenance.synthetic
    assert (conv.provenance.model_extra or {})["gates"] == "passed"
    assert conv.extra["risk_level"] in ("moderate", "high")


def test_exhausted_turns_are_dropped_or_kept_flagged(teacher_cls) -> None:  # type: ignore[no-untyped-def]
    plan = plan_build(small())
    bad = "1-01"
    stats, rejections = GenerationStats(), []  # type: ignore[var-annotated]
    ds = generate_conversations(plan, teacher_cls(always_bad=[bad]), direct, rejections, stats)
    assert bad not in {c.id for c in ds.conversations} and stats.conversations_dropped == 1
    assert [r.outcome for r in rejections if r.conversation_id == bad][-1] == "dropped"
    assert len([r for r in rejections if r.conversation_id == bad]) == 3  # k=2: three attempts

    plan = plan_build(small(regeneration={"on_exhausted": "keep_flagged", "max_regenerations": 0}))
    stats, rejections = GenerationStats(), []
    ds = generate_conversations(plan, teacher_cls(always_bad=[bad]), direct, rejections, stats)
    kept = next(c for c in ds.conversations if c.id == bad)
    extra = kept.provenance.model_extra or {}
    assert extra["gates"] == "flagged" and "meta.refusal" in extra["gate_flags"][0]["codes"]
    assert stats.turns_flagged >= 1


def test_missing_crisis_resources_are_regenerated_or_appended_as_configured(teacher_cls) -> None:  # type: ignore[no-untyped-def]
    from tidekit.safety import CRISIS_PARAGRAPH, has_crisis_resources

    # a teacher that never names a resource: replies to the risky scenario fail the safety gate
    stats, rejections = GenerationStats(), []  # type: ignore[var-annotated]
    ds = generate_conversations(plan_build(small()), teacher_cls(crisis_line=False), direct, rejections, stats)
    assert stats.conversations_dropped == 3 and stats.crisis_appended == 0
    assert {c.scenario_id for c in ds.conversations} == {"survivor_guilt"}
    assert any("safety.missing_crisis_resources" in r.codes for r in rejections)

    bad = "1-02"  # refuses every time: the paragraph never mends a reply that fails another gate too
    stats, rejections = GenerationStats(), []
    plan = plan_build(small(regeneration={"crisis_resources": "append"}))
    ds = generate_conversations(plan, teacher_cls(always_bad=[bad], crisis_line=False), direct, rejections, stats)
    risky = [c for c in ds.conversations if c.scenario_id == "self_harm_urges"]
    assert len(risky) == 2 and bad not in {c.id for c in ds.conversations}
    assert stats.crisis_appended == 2 and stats.conversations_dropped == 1
    for c in risky:
        assert c.reference.endswith("\n\n" + CRISIS_PARAGRAPH) and has_crisis_resources(c.reference)
        assert (c.provenance.model_extra or {})["crisis_resources_appended"] == [1]
    safe = [c for c in ds.conversations if c.scenario_id == "survivor_guilt"]
    assert safe and all(CRISIS_PARAGRAPH not in c.reference for c in safe)
    assert all("crisis_resources_appended" not in (c.provenance.model_extra or {}) for c in safe)


def test_more_exchanges_give_longer_dialogues(teacher_cls) -> None:  # type: ignore[no-untyped-def]
    plan = plan_build(small(exchanges=2, scenarios={"ids": ["survivor_guilt"]}))
    stats, rejections = GenerationStats(), []  # type: ignore[var-annotated]
    ds = generate_conversations(plan, teacher_cls(), direct, rejections, stats)
    assert all([t.role for t in c.turns] == ["client", "supporter", "client"] for c in ds.conversations)
    assert all(c.reference for c in ds.conversations)


def test_per_persona_subsets_are_balanced() -> None:
    plan = plan_build(BuildConfig.model_validate({"personas": {"n": 20, "seed": 2},
                                                  "scenarios": {"per_persona": 5}}))
    from collections import Counter

    counts = Counter(s.id for _, scenarios in plan.assignments for s in scenarios)
    assert len(counts) == 20 and set(counts.values()) == {5}
    assert all(len({s.id for s in ss}) == 5 for _, ss in plan.assignments)
