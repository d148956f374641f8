"""The build pipeline: persona x scenario -> client turn -> reference reply, gated, resumable.

Turns are generated step by step over all conversations at once (all first client messages,
then all replies, ...), so the engine can batch them. After each batch every turn passes
through the quality gates, in conversation order; a rejected turn is regenerated with a new
seed (a new cache key) and a temperature above zero, up to ``regeneration.max_regenerations``
times. Every model call goes through ``tidekit.generation.run_requests`` with the build's
SQLite cache, and everything else is a deterministic function of the config and the cached
outputs, so a build killed at any point and rerun replays the finished calls from the cache
and regenerates nothing it had already accepted.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from tidekit.backends import Backend, ChatRequest, ChatResult, GenerationParams
from tidekit.builder._config import BuildPlan
from tidekit.builder._gates import Gate, GateItem, Rejection, make_gates
from tidekit.builder._prompts import client_messages, supporter_messages
from tidekit.data import Conversation, Dataset, Message, Persona, Provenance, Turn
from tidekit.safety import crisis_suffix
from tidekit.scenarios import Scenario

__all__ = ["GenerationStats", "RejectionRecord", "generate_conversations"]

Role = Literal["client", "supporter"]
RunFn = Callable[[Backend, Sequence[ChatRequest], str], list[ChatResult]]
CRISIS_CODE = "safety.missing_crisis_resources"  # the one rejection `regeneration.crisis_resources: append` mends


class RejectionRecord(BaseModel):
    """One generated turn that failed a gate (a line of rejections.jsonl)."""

    conversation_id: str = Field(description="The conversation the turn belongs to.")
    step: int = Field(description="Turn index within the conversation (0 = first client message).")
    role: Role = Field(description="client or supporter.")
    attempt: int = Field(description="0 = first generation, 1.. = regenerations.")
    codes: list[str] = Field(description="Reason codes.")
    details: list[str] = Field(description="What each gate found.")
    text: str | None = Field(description="The rejected text (None when the call itself failed).")
    outcome: Literal["regenerated", "dropped", "kept_flagged"] = Field(
        description="What happened next: regenerated, or (after the last attempt) dropped or kept flagged.")


class GenerationStats(BaseModel):
    """Counts and timings of the generation loop."""

    requests: int = Field(default=0, description="Model requests made (cached or not).")
    model_s: float = Field(default=0.0, description="Wall seconds inside the engine (model calls and cache).")
    gates_s: float = Field(default=0.0, description="Wall seconds in the quality gates.")
    turns_accepted: int = Field(default=0, description="Turns that passed every gate.")
    turns_rejected: int = Field(default=0, description="Generated turns rejected (each attempt counts).")
    turns_flagged: int = Field(default=0, description="Turns kept flagged after the last attempt.")
    crisis_appended: int = Field(default=0, description="Supporter turns kept with the fixed crisis paragraph "
                                 "appended (regeneration.crisis_resources: append).")
    conversations_dropped: int = Field(default=0, description="Conversations dropped after the last attempt.")
    reasons: dict[str, int] = Field(default_factory=dict, description="Rejections per reason code.")
    attempts: dict[str, int] = Field(default_factory=dict,
                                     description="Accepted turns by the attempt that passed (0 = first).")
    prompt_tokens: int = Field(default=0, description="Prompt tokens of all requests, where reported.")
    completion_tokens: int = Field(default=0, description="Generated tokens of all requests, where reported.")


@dataclass
class _Attempt:
    attempt: int
    text: str | None
    rejections: list[Rejection]


@dataclass
class _Item:
    id: str
    persona: Persona
    scenario: Scenario
    turns: list[Turn] = field(default_factory=list)
    alive: bool = True
    flags: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    tries: list[_Attempt] = field(default_factory=list)
    last_rejection: RejectionRecord | None = None
    crisis_appended: list[int] = field(default_factory=list)  # steps whose reply got the crisis paragraph


def request_seed(seed: int, item_id: str, step: int, attempt: int) -> int:
    """A per-request seed: stable for a (build seed, conversation, turn, attempt)."""
    digest = hashlib.sha256(f"{seed}:{item_id}:{step}:{attempt}".encode()).hexdigest()
    return int(digest[:8], 16)


def _clean(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _params(base: GenerationParams, regen_temperature: float, seed: int, attempt: int) -> GenerationParams:
    temperature = base.temperature if attempt == 0 else max(base.temperature, regen_temperature)
    return base.model_copy(update={"seed": seed, "temperature": temperature})


def _severity(tr: _Attempt) -> tuple[int, int, int]:
    safety = sum(r.code.startswith("safety.") for r in tr.rejections)
    return (tr.text is None, safety, len(tr.rejections))


def generate_conversations(
    plan: BuildPlan,
    backend: Backend,
    run: RunFn,
    rejections: list[RejectionRecord],
    stats: GenerationStats,
    gates: list[Gate] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Dataset:
    """Generate, gate and regenerate every conversation of ``plan``; returns the dataset.

    ``run(backend, requests, label)`` computes a batch (the engine, with the build's cache). Rejected
    turns are appended to ``rejections`` and counted in ``stats``.
    """
    config = plan.config
    gates = gates if gates is not None else make_gates(config.gates)
    items = [_Item(id=f"{p.id}-{j:02d}", persona=p, scenario=s)
             for p, scenarios in plan.assignments for j, s in enumerate(scenarios, start=1)]
    reasons: Counter[str] = Counter()
    attempts_ok: Counter[str] = Counter()
    k = config.regeneration.max_regenerations
    for step in range(2 * config.exchanges):
        role: Role = "client" if step % 2 == 0 else "supporter"
        base = config.client if role == "client" else config.supporter
        pending = [it for it in items if it.alive]
        for it in pending:
            it.tries = []
        for attempt in range(k + 1):
            if not pending:
                break
            label = f"turn {step + 1}/{2 * config.exchanges} {role}, attempt {attempt + 1}/{k + 1}"
            if on_step:
                on_step(f"{label}: {len(pending)} request(s)")
            requests = []
            for it in pending:
                messages: list[Message] = (client_messages(it.persona, it.scenario, it.turns) if role == "client"
                                           else supporter_messages(it.scenario, it.turns))
                seed = request_seed(config.seed, it.id, step, attempt)
                requests.append(ChatRequest(id=f"{it.id}/{step}/{attempt}", messages=messages,
                                            params=_params(base, config.regeneration.temperature, seed, attempt)))
            t0 = time.perf_counter()
            results = run(backend, requests, label)
            stats.model_s += time.perf_counter() - t0
            stats.requests += len(requests)
            by_id = {r.id: r for r in results}
            t0 = time.perf_counter()
            still: list[_Item] = []
            for it, req in zip(pending, requests, strict=True):
                res = by_id.get(req.id)
                stats.prompt_tokens += (res.prompt_tokens or 0) if res else 0
                stats.completion_tokens += (res.completion_tokens or 0) if res else 0
                text = _clean(res.text) if res is not None and res.text is not None else None
                if text is None or not text:
                    why = (res.error if res is not None and res.error else "empty output") or "empty output"
                    rejs = [Rejection(code="length.too_short" if text == "" else "generation.error",
                                      gate="engine", detail=why[:200])]
                else:
                    gate_item = GateItem(item_id=it.id, role=role, text=text, persona=it.persona,
                                         scenario=it.scenario, context=it.turns)
                    rejs = [r for g in gates for r in g(gate_item)]
                    if rejs and config.regeneration.crisis_resources == "append" and all(
                            r.code == CRISIS_CODE for r in rejs):
                        # the reply is otherwise sound: the fixed paragraph adds the resources it lacks
                        text = text + crisis_suffix(text)
                        gate_item = GateItem(item_id=it.id, role=role, text=text, persona=it.persona,
                                             scenario=it.scenario, context=it.turns)
                        rejs = [r for g in gates for r in g(gate_item)]
                        if not rejs:
                            it.crisis_appended.append(step)
                            stats.crisis_appended += 1
                    if not rejs:
                        it.turns.append(Turn(role=role, text=text))
                        it.attempts.append(attempt)
                        attempts_ok[str(attempt)] += 1
                        stats.turns_accepted += 1
                        for g in gates:
                            remember = getattr(g, "remember", None)
                            if remember is not None:
                                remember(gate_item)
                        continue
                it.tries.append(_Attempt(attempt, text or None, rejs))
                reasons.update(r.code for r in rejs)
                stats.turns_rejected += 1
                it.last_rejection = RejectionRecord(
                    conversation_id=it.id, step=step, role=role, attempt=attempt, codes=[r.code for r in rejs],
                    details=[r.detail for r in rejs], text=text or None, outcome="regenerated")
                rejections.append(it.last_rejection)
                still.append(it)
            stats.gates_s += time.perf_counter() - t0
            pending = still
        for it in pending:  # every attempt failed
            best = min(it.tries, key=_severity)
            keep = config.regeneration.on_exhausted == "keep_flagged" and best.text is not None
            if it.last_rejection is not None:
                it.last_rejection.outcome = "kept_flagged" if keep else "dropped"
            if keep and best.text is not None:
                it.turns.append(Turn(role=role, text=best.text))
                it.attempts.append(best.attempt)
                it.flags.append({"step": step, "role": role, "attempt": best.attempt,
                                 "codes": [r.code for r in best.rejections]})
                stats.turns_flagged += 1
                for g in gates:
                    remember = getattr(g, "remember", None)
                    if remember is not None:
                        remember(GateItem(item_id=it.id, role=role, text=best.text, persona=it.persona,
                                          scenario=it.scenario, context=it.turns[:-1]))
            else:
                it.alive = False
                stats.conversations_dropped += 1
    stats.reasons = dict(reasons.most_common())
    stats.attempts = dict(sorted(attempts_ok.items()))
    return _assemble(items, plan, backend)


def _assemble(items: list[_Item], plan: BuildPlan, backend: Backend) -> Dataset:
    teacher = backend.identity.alias
    conversations = []
    for it in items:
        if not it.alive:
            continue
        extra: dict[str, Any] = {"gates": "flagged" if it.flags else "passed", "attempts": it.attempts}
        if it.flags:
            extra["gate_flags"] = it.flags
        if it.crisis_appended:
            extra["crisis_resources_appended"] = it.crisis_appended
        provenance = Provenance.model_validate(
            {"source": "tidekit build", "synthetic": True, "generator": teacher, **extra})
        conversations.append(Conversation(
            id=it.id, persona_id=it.persona.id, scenario_id=it.scenario.id, scenario=it.scenario.name,
            turns=it.turns[:-1], reference=it.turns[-1].text, provenance=provenance,
            extra={"category": it.scenario.category, "empathy_factor": it.scenario.empathy_factor,
                   "risk_level": it.scenario.risk_level}))
    with_conv = {c.persona_id for c in conversations}
    personas = [p for p, _ in plan.assignments if p.id in with_conv]
    return Dataset(personas=personas, conversations=conversations, source=str(plan.config.out))
