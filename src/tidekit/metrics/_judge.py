"""The three-factor empathy judge: any chat backend rates replies with the rubric.

A judge is a :class:`~tidekit.backends.BackendConfig` plus a name. Requests go through the
generation engine (``tidekit.generation.run_requests``: batching, caching, resumption), so a
rerun never asks a judge twice. Each request carries the verdict's JSON schema
(:func:`~tidekit.metrics._rubric.verdict_schema`), which backends that can enforce it decode
under (``hf``: constrained decoding; ``openai``: ``response_format``; ``anthropic``: a forced
tool call), and asks for the most likely tokens at each position, from which the
probability-weighted (expected) score of each criterion is computed next to the most likely
one. Each reply is parsed (:func:`~tidekit.metrics._rubric.parse_verdict`); a reply that cannot
be read is asked again, quoting the problem, up to ``max_retries`` times, and what still fails
is recorded as a parse failure. A judge whose failure rate passes ``max_parse_failure_rate``
fails the run, or with ``on_failure: drop`` is left out of the scores and reported; a judge
whose readable verdicts never vary on a criterion is flagged as constant. Several judges are
averaged per criterion over those that gave a readable verdict.

Two biases are measured and reported, not corrected: *verbosity* (Spearman correlation of each
criterion's score with the reply's length in words) and *position* (a probe that re-asks a
fixed sample with the criteria listed in reverse order; the mean change per criterion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from tidekit._config import StrictModel
from tidekit._manifest import ModelIdentity
from tidekit.backends import (
    BackendConfig,
    ChatRequest,
    ChatResult,
    GenerationParams,
    ResponseFormat,
    load_backend,
)
from tidekit.data import Message
from tidekit.errors import DataError
from tidekit.generation import run_requests
from tidekit.metrics._rubric import (
    CRITERIA,
    ParseFailure,
    Rubric,
    build_rubric,
    expected_scores,
    parse_verdict,
    verdict_schema,
)
from tidekit.metrics._tokenize import words

__all__ = [
    "JudgeBias",
    "JudgeConfig",
    "JudgeItem",
    "JudgeOptions",
    "JudgeRun",
    "JudgeSummary",
    "JudgeVerdict",
    "Runner",
    "aggregate_verdicts",
    "judge_items",
    "judge_sets",
    "measure_bias",
    "run_judges",
    "summarize_judge",
    "verdict_value",
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
    structured: bool = Field(default=True, description="Send the verdict's JSON schema: constrained decoding (hf), "
                                                       "response_format (openai), a forced tool call (anthropic).")
    top_logprobs: int = Field(default=5, ge=0, le=20, description="Ask for this many most likely tokens per "
                                                                  "position, for expected scores (0 = do not).")
    score: Literal["expected", "argmax"] = Field(
        default="expected", description="What the judge_* score columns hold: the probability-weighted score "
                                         "where the backend gives token probabilities (else the most likely), "
                                         "or always the most likely score.")
    max_parse_failure_rate: float = Field(
        default=0.2, ge=0.0, le=1.0,
        description="A judge whose final parse-failure rate exceeds this fails the run (or is dropped).")
    on_failure: Literal["fail", "drop"] = Field(
        default="fail", description="Past max_parse_failure_rate: 'fail' the run, or 'drop' the judge from the "
                                    "scores with a warning in the manifest, tables and report.")


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
    scores: dict[str, int] | None = Field(description="Criterion -> 1-5 (the most likely score), or None when "
                                                      "never readable.")
    expected: dict[str, float] | None = Field(
        default=None, description="Criterion -> probability-weighted score sum(k * p(k)), where the backend gave "
                                  "token probabilities.")
    structured: bool | None = Field(default=None, description="The backend enforced the verdict schema.")
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


class JudgeSummary(BaseModel):
    """How one judge did: readability, where its scores came from, and warnings."""

    judge: str
    n: int = Field(description="Replies asked about.")
    parsed: int = Field(description="Replies with a readable verdict.")
    parse_failure_rate: float = Field(description="Share never readable.")
    first_try_failure_rate: float = Field(description="Share unreadable at the first request.")
    structured_rate: float | None = Field(default=None, description="Share of readable verdicts decoded under "
                                                                    "the enforced schema (None: not asked).")
    expected_rate: float = Field(description="Share of readable verdicts with a probability-weighted score.")
    score_source: Literal["expected", "argmax"] = Field(description="What this judge's score columns hold.")
    n_per_criterion: dict[str, int] = Field(description="Criterion -> readable verdicts.")
    constant: list[str] = Field(default_factory=list, description="Criteria whose readable scores (the ones the "
                                                                  "tables use) never vary.")
    dropped: bool = Field(default=False, description="Left out of the scores (failure rate past the threshold).")
    warnings: list[str] = Field(default_factory=list, description="Human-readable warnings.")


class JudgeRun(BaseModel):
    """Everything the judges produced."""

    verdicts: list[JudgeVerdict] = Field(default_factory=list)
    identities: list[ModelIdentity] = Field(default_factory=list)
    parse_failure_rate: dict[str, float] = Field(default_factory=dict, description="Judge -> final failure share.")
    first_try_failure_rate: dict[str, float] = Field(default_factory=dict, description="Judge -> share unreadable at first.")
    bias: list[JudgeBias] = Field(default_factory=list)
    summaries: list[JudgeSummary] = Field(default_factory=list)
    rubric_digest: str = ""

    @property
    def warnings(self) -> list[str]:
        return [w for s in self.summaries for w in s.warnings]

    def usable(self) -> list[JudgeVerdict]:
        """Verdicts of the judges that were not dropped."""
        dropped = {s.judge for s in self.summaries if s.dropped}
        return [v for v in self.verdicts if v.judge not in dropped]


@dataclass
class _Pending:
    item: JudgeItem
    messages: list[Message]
    attempts: int = 0
    first_ok: bool = False
    last: str | None = None
    error: str | None = None
    scores: dict[str, int] | None = None
    expected: dict[str, float] | None = None
    structured: bool | None = None
    done: bool = field(default=False)


def judge_items(items: Sequence[JudgeItem], runner: Runner, judge: str, options: JudgeOptions,
                rubric: Rubric | None = None) -> list[JudgeVerdict]:
    """Ask ``runner`` to rate every item, re-asking unreadable replies; one verdict per item."""
    return judge_sets([(items, rubric or build_rubric())], runner, judge, options)[0]


def judge_sets(sets: Sequence[tuple[Sequence[JudgeItem], Rubric]], runner: Runner, judge: str,
               options: JudgeOptions) -> list[list[JudgeVerdict]]:
    """:func:`judge_items` for several item sets, each with its own rubric (the ratings and the
    reversed-order bias probe), asked together: each attempt is one request list, so the engine
    batches every set's requests at once. One list of verdicts per set, in order."""
    params = GenerationParams(max_new_tokens=options.max_new_tokens, temperature=options.temperature,
                              seed=options.seed)
    formats = [ResponseFormat(name="empathy_verdict", json_schema=verdict_schema(rubric.order))
               if options.structured else None for _, rubric in sets]
    pending = [[_Pending(item, rubric.messages(item.client_text, item.response)) for item in items]
               for items, rubric in sets]
    for attempt in range(options.max_retries + 1):
        todo = [(k, p) for k, ps in enumerate(pending) for p in ps if not p.done]
        if not todo:
            break
        # the first set keeps its historical ids (engine caches and logs); later sets are tagged
        requests = [ChatRequest(id=f"{p.item.id}#{attempt}" if k == 0 else f"{p.item.id}#set{k}#{attempt}",
                                messages=p.messages, params=params, response_format=formats[k],
                                logprobs=options.top_logprobs) for k, p in todo]
        results = {r.id: r for r in runner(requests)}
        for (k, p), req in zip(todo, requests, strict=True):
            rubric = sets[k][1]
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
                p.expected = expected_scores(res.logprobs or [], rubric.order)
                p.structured = res.structured
    return [[JudgeVerdict(id=p.item.id, judge=judge, scores=p.scores, expected=p.expected, structured=p.structured,
                          attempts=p.attempts, first_try_ok=p.first_ok, error=p.error,
                          raw=None if p.last is None else p.last[:1000]) for p in ps] for ps in pending]


def verdict_value(verdict: JudgeVerdict, key: str, score: Literal["expected", "argmax"] = "expected") -> float | None:
    """The score of ``key`` the tables use: expected where asked for and available, else the most likely."""
    if score == "expected" and verdict.expected and key in verdict.expected:
        return verdict.expected[key]
    return float(verdict.scores[key]) if verdict.scores and key in verdict.scores else None


def summarize_judge(judge: str, verdicts: Sequence[JudgeVerdict], options: JudgeOptions) -> JudgeSummary:
    """Readability, score source and warnings of one judge's verdicts (``dropped`` is not decided here)."""
    n = len(verdicts)
    ok = [v for v in verdicts if v.scores]
    with_expected = [v for v in ok if v.expected]
    source: Literal["expected", "argmax"] = ("expected" if options.score == "expected" and ok
                                             and len(with_expected) == len(ok) else "argmax")
    per = {key: sum(verdict_value(v, key, options.score) is not None for v in verdicts) for key in CRITERIA}
    constant = []
    for key in CRITERIA:
        values = {round(x, 6) for v in ok if (x := verdict_value(v, key, options.score)) is not None}
        if len(ok) >= 2 and len(values) == 1:
            constant.append(key)
    rate = (n - len(ok)) / n if n else 0.0
    asked = [v.structured for v in ok if v.structured is not None]
    summary = JudgeSummary(judge=judge, n=n, parsed=len(ok), parse_failure_rate=rate,
                           first_try_failure_rate=sum(not v.first_try_ok for v in verdicts) / n if n else 0.0,
                           structured_rate=sum(asked) / len(asked) if asked else None,
                           expected_rate=len(with_expected) / len(ok) if ok else 0.0, score_source=source,
                           n_per_criterion=per, constant=constant)
    if constant:
        shown = ", ".join(f"{k}={verdict_value(ok[0], k, options.score):g}" for k in constant)
        summary.warnings.append(f"judge {judge!r} gave the same score to all {len(ok)} readable replies on "
                                f"{', '.join(constant)} ({shown}): it does not discriminate there")
    return summary


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


def aggregate_verdicts(verdicts: Sequence[JudgeVerdict],
                       score: Literal["expected", "argmax"] = "argmax") -> dict[str, dict[str, float]]:
    """Item id -> criterion -> mean over judges with a readable verdict, plus ``n_judges``.

    ``score``: average the most likely scores, or the expected ones where a judge has them.
    """
    sums: dict[str, dict[str, float]] = {}
    for v in verdicts:
        if not v.scores:
            continue
        acc = sums.setdefault(v.id, {key: 0.0 for key in CRITERIA} | {"n_judges": 0.0})
        for key in CRITERIA:
            acc[key] += verdict_value(v, key, score) or 0.0
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
               progress: bool = True) -> JudgeRun:
    """Rate ``items`` with every judge; ``runner_for`` defaults to the generation engine.

    ``cache`` is the engine's SQLite cache file (a rerun asks no judge the same thing twice).
    """
    runner_for = runner_for or (lambda cfg: _engine_runner(cfg, cache, progress))
    rubric, reversed_rubric = build_rubric(), build_rubric(tuple(reversed(CRITERIA)))
    by_id = {it.id: it for it in items}
    run = JudgeRun(rubric_digest=rubric.digest)
    for cfg in judges:
        runner, identity, close = runner_for(cfg)
        try:
            # the ratings and the bias probe in one request list per attempt: one engine batch
            sample = _probe_sample(items, options.bias_probe_n) if options.bias_probe_n else []
            verdicts, *probed = judge_sets([(items, rubric), *([(sample, reversed_rubric)] if sample else [])],
                                           runner, cfg.label, options)
            probe = probed[0] if probed else []
        finally:
            close()
        identity = identity.model_copy(update={"role": "judge", "alias": cfg.label})
        run.identities.append(identity)
        run.verdicts.extend(verdicts)
        summary = summarize_judge(cfg.label, verdicts, options)
        run.parse_failure_rate[cfg.label] = summary.parse_failure_rate
        run.first_try_failure_rate[cfg.label] = summary.first_try_failure_rate
        run.bias.append(measure_bias(verdicts, by_id, probe))
        if summary.parse_failure_rate > options.max_parse_failure_rate:
            bad = [v.id for v in verdicts if v.scores is None]
            what = (f"judge {cfg.label!r} could not be read for {len(bad)} of {len(verdicts)} replies "
                    f"(rate {summary.parse_failure_rate:.2f} > max_parse_failure_rate "
                    f"{options.max_parse_failure_rate}); e.g. {', '.join(bad[:5])}")
            if options.on_failure == "fail":
                raise DataError(f"{what}. Use a stronger judge or one whose backend enforces the verdict schema "
                                "(judge.structured), raise judge.max_retries, set judge.on_failure=drop to score "
                                "without it, or raise the threshold.")
            summary.dropped = True
            summary.warnings.insert(0, f"DROPPED: {what}; its verdicts are in judge_scores.parquet but not in "
                                       "the judge_* columns")
        run.summaries.append(summary)
    return run


def _engine_runner(cfg: JudgeConfig, cache: str | None,
                   progress: bool = True) -> tuple[Runner, ModelIdentity, Callable[[], None]]:
    """A runner that sends requests through the generation engine (batching and caching)."""
    backend = load_backend(cfg.backend)

    def runner(requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return list(run_requests(backend, list(requests), cache=cache,
                                 progress=f"judge {cfg.label}" if progress else False))

    return runner, backend.identity, backend.close
