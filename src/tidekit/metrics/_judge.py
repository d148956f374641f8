"""The three-factor empathy judge: any chat backend rates replies with the rubric.

A judge is a :class:`~tidekit.backends.BackendConfig` plus a name. Requests go through the
generation engine (``tidekit.generation.run_requests``: batching, caching, resumption), so a
rerun never asks a judge twice. Each reply is parsed (:func:`~tidekit.metrics._rubric.parse_verdict`);
a reply that cannot be read is asked again, quoting the problem, up to ``max_retries`` times,
and what still fails is recorded as a parse failure (the rate is reported per judge). Several
judges are averaged per criterion over those that gave a readable verdict.

Two biases are measured and reported, not corrected: *verbosity* (Spearman correlation of each
criterion's score with the reply's length in words) and *position* (a probe that re-asks a
fixed sample with the criteria listed in reverse order; the mean change per criterion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from tidekit._config import StrictModel
from tidekit._manifest import ModelIdentity
from tidekit.backends._protocol import BackendConfig, ChatRequest, ChatResult, GenerationParams
from tidekit.data import Message
from tidekit.metrics._rubric import CRITERIA, ParseFailure, Rubric, build_rubric, parse_verdict
from tidekit.metrics._tokenize import words

__all__ = [
    "JudgeBias",
    "JudgeConfig",
    "JudgeItem",
    "JudgeOptions",
    "JudgeRun",
    "JudgeVerdict",
    "Runner",
    "aggregate_verdicts",
    "judge_items",
    "measure_bias",
    "run_judges",
]

Runner = Callable[[Sequence[ChatRequest]], list[ChatResult]]


class JudgeConfig(StrictModel):
    """One judge: the backend that answers and the name its scores are recorded under."""

    backend: BackendConfig = Field(default_factory=BackendConfig, description="The judge model's backend.")
    name: str | None = Field(default=None, description="Label in outputs; default the backend's model.")

    @property
    def label(self) -> str:
        return self.name or self.backend.model


class JudgeOptions(StrictModel):
    """How every judge is asked."""

    max_retries: int = Field(default=2, ge=0, le=5, description="Re-asks after an unreadable reply.")
    max_new_tokens: int = Field(default=96, ge=16, le=2048, description="Longest judge reply.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 = greedy (reproducible).")
    seed: int = Field(default=0, description="Seed for sampled judging.")
    bias_probe_n: int = Field(default=20, ge=0, description="Items re-asked with reversed criteria (position probe).")
    max_parse_failure_rate: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="Fail the run when a judge's final parse-failure rate exceeds this (1.0 = never).")


@dataclass(frozen=True)
class JudgeItem:
    """One reply to rate, with the client message it answers."""

    id: str
    client_text: str
    response: str


class JudgeVerdict(BaseModel):
    """One judge's rating of one reply."""

    id: str = Field(description="The item id (conversation id and system).")
    judge: str = Field(description="Judge label.")
    scores: dict[str, int] | None = Field(description="Criterion -> 1-5, or None when never readable.")
    attempts: int = Field(description="Requests made for this item (1 + retries used).")
    first_try_ok: bool = Field(description="The first reply was readable.")
    error: str | None = Field(default=None, description="Last parse failure or backend error.")
    raw: str | None = Field(default=None, description="The last reply, truncated to 1,000 characters.")


class JudgeBias(BaseModel):
    """Bias measurements for one judge."""

    judge: str
    verbosity_spearman: dict[str, float | None] = Field(
        description="Criterion -> Spearman rho of score vs reply length in words (None if undefined).")
    verbosity_p: dict[str, float | None] = Field(description="Criterion -> two-sided p of that rho.")
    position_shift: dict[str, float | None] = Field(
        description="Criterion -> mean (reversed-order score - original score) over the probe.")
    position_changed: float | None = Field(description="Share of probe scores that changed at all.")
    position_n: int = Field(description="Probe items readable in both orders.")


class JudgeRun(BaseModel):
    """Everything the judges produced."""

    verdicts: list[JudgeVerdict] = Field(default_factory=list)
    identities: list[ModelIdentity] = Field(default_factory=list)
    parse_failure_rate: dict[str, float] = Field(default_factory=dict, description="Judge -> final failure share.")
    first_try_failure_rate: dict[str, float] = Field(default_factory=dict, description="Judge -> share unreadable at first.")
    bias: list[JudgeBias] = Field(default_factory=list)
    rubric_digest: str = ""


@dataclass
class _Pending:
    item: JudgeItem
    messages: list[Message]
    attempts: int = 0
    first_ok: bool = False
    last: str | None = None
    error: str | None = None
    scores: dict[str, int] | None = None
    done: bool = field(default=False)


def judge_items(items: Sequence[JudgeItem], runner: Runner, judge: str, options: JudgeOptions,
                rubric: Rubric | None = None) -> list[JudgeVerdict]:
    """Ask ``runner`` to rate every item, re-asking unreadable replies; one verdict per item."""
    rubric = rubric or build_rubric()
    params = GenerationParams(max_new_tokens=options.max_new_tokens, temperature=options.temperature,
                              seed=options.seed)
    pending = [_Pending(item, rubric.messages(item.client_text, item.response)) for item in items]
    for attempt in range(options.max_retries + 1):
        todo = [p for p in pending if not p.done]
        if not todo:
            break
        requests = [ChatRequest(id=f"{p.item.id}#{attempt}", messages=p.messages, params=params) for p in todo]
        results = {r.id: r for r in runner(requests)}
        for p, req in zip(todo, requests, strict=True):
            p.attempts += 1
            res = results.get(req.id)
            if res is None or res.text is None:
                p.error = (res.error if res is not None else None) or "the backend returned no reply"
                p.last = None
                continue  # a backend failure is asked again as is
            p.last = res.text
            verdict = parse_verdict(res.text)
            if isinstance(verdict, ParseFailure):
                p.error = verdict.reason
                p.messages = rubric.retry(p.messages[:2], res.text, verdict)
            else:
                p.scores, p.error, p.done = verdict, None, True
                p.first_ok = attempt == 0
    return [JudgeVerdict(id=p.item.id, judge=judge, scores=p.scores, attempts=p.attempts,
                         first_try_ok=p.first_ok, error=p.error,
                         raw=None if p.last is None else p.last[:1000]) for p in pending]


def _spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None, None
    from scipy.stats import spearmanr

    rho, p = spearmanr(x, y)
    return (None if math.isnan(rho) else float(rho)), (None if math.isnan(p) else float(p))


def measure_bias(verdicts: Sequence[JudgeVerdict], items: dict[str, JudgeItem],
                 probe: Sequence[JudgeVerdict] = ()) -> JudgeBias:
    """Verbosity (score vs length) and position (reversed criteria) bias of one judge."""
    judge = verdicts[0].judge if verdicts else (probe[0].judge if probe else "")
    ok = [v for v in verdicts if v.scores]
    lengths = [float(len(words(items[v.id].response))) for v in ok]
    rho, pval = {}, {}
    for key in CRITERIA:
        rho[key], pval[key] = _spearman(lengths, [float(v.scores[key]) for v in ok if v.scores])
    original = {v.id: v.scores for v in ok}
    pairs = [(original[p.id], p.scores) for p in probe if p.scores and original.get(p.id)]
    shift: dict[str, float | None] = {}
    for key in CRITERIA:
        diffs = [b[key] - a[key] for a, b in pairs if a and b]
        shift[key] = sum(diffs) / len(diffs) if diffs else None
    changed = [a[key] != b[key] for a, b in pairs if a and b for key in CRITERIA]
    return JudgeBias(judge=judge, verbosity_spearman=rho, verbosity_p=pval, position_shift=shift,
                     position_changed=sum(changed) / len(changed) if changed else None, position_n=len(pairs))


def aggregate_verdicts(verdicts: Sequence[JudgeVerdict]) -> dict[str, dict[str, float]]:
    """Item id -> criterion -> mean over judges with a readable verdict, plus ``n_judges``."""
    sums: dict[str, dict[str, float]] = {}
    for v in verdicts:
        if not v.scores:
            continue
        acc = sums.setdefault(v.id, {key: 0.0 for key in CRITERIA} | {"n_judges": 0.0})
        for key in CRITERIA:
            acc[key] += v.scores[key]
        acc["n_judges"] += 1
    return {item: {key: (acc[key] / acc["n_judges"] if key != "n_judges" else acc[key]) for key in acc}
            for item, acc in sums.items()}


def _probe_sample(items: Sequence[JudgeItem], n: int) -> list[JudgeItem]:
    import hashlib

    ranked = sorted(items, key=lambda it: hashlib.sha256(it.id.encode()).hexdigest())
    return ranked[:n]


def run_judges(judges: Sequence[JudgeConfig], items: Sequence[JudgeItem], options: JudgeOptions,
               cache: str | None = None, runner_for: Callable[[JudgeConfig], tuple[Runner, ModelIdentity,
                                                                                   Callable[[], None]]] | None = None,
               ) -> JudgeRun:
    """Rate ``items`` with every judge; ``runner_for`` defaults to the generation engine.

    ``cache`` is the engine's SQLite cache file (a rerun asks no judge the same thing twice).
    """
    from tidekit.errors import DataError

    runner_for = runner_for or (lambda cfg: _engine_runner(cfg, cache))
    rubric, reversed_rubric = build_rubric(), build_rubric(tuple(reversed(CRITERIA)))
    by_id = {it.id: it for it in items}
    run = JudgeRun(rubric_digest=rubric.digest)
    for cfg in judges:
        runner, identity, close = runner_for(cfg)
        try:
            verdicts = judge_items(items, runner, cfg.label, options, rubric)
            probe = judge_items(_probe_sample(items, options.bias_probe_n), runner, cfg.label, options,
                                reversed_rubric) if options.bias_probe_n else []
        finally:
            close()
        identity = identity.model_copy(update={"role": "judge", "alias": cfg.label})
        run.identities.append(identity)
        run.verdicts.extend(verdicts)
        n = max(len(verdicts), 1)
        run.parse_failure_rate[cfg.label] = sum(v.scores is None for v in verdicts) / n
        run.first_try_failure_rate[cfg.label] = sum(not v.first_try_ok for v in verdicts) / n
        run.bias.append(measure_bias(verdicts, by_id, probe))
        if run.parse_failure_rate[cfg.label] > options.max_parse_failure_rate:
            bad = [v.id for v in verdicts if v.scores is None]
            raise DataError(f"judge {cfg.label!r} could not be read for {len(bad)} of {len(verdicts)} replies "
                            f"(rate {run.parse_failure_rate[cfg.label]:.2f} > max_parse_failure_rate "
                            f"{options.max_parse_failure_rate}); e.g. {', '.join(bad[:5])}. Use a stronger "
                            "judge, raise judge.max_retries, or raise the threshold.")
    return run


def _engine_runner(cfg: JudgeConfig, cache: str | None) -> tuple[Runner, ModelIdentity, Callable[[], None]]:
    """A runner that sends requests through the generation engine (batching and caching)."""
    from tidekit.backends import load_backend
    from tidekit.generation import run_requests

    backend = load_backend(cfg.backend)

    def runner(requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return list(run_requests(backend, list(requests), cache=cache, progress=f"judge {cfg.label}"))

    return runner, backend.identity, backend.close
