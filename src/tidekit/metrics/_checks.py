"""The safety checks and the empathy judges as registered scorers of the scoring pipeline.

Like the reference metrics and the learned scorers (``_scorers.py``) each declares the columns
it writes and the models it needs, and scores a :class:`~tidekit.metrics._scorers.ScoringBatch`;
these two also say how their columns are typed (the safety flags are booleans), what an
excluded reply holds, which role their columns play in the tables (``check``: aggregated, not
compared; ``judge``: compared, each cell with its own n) and what they add to the run's files
and manifest (:meth:`finish`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidekit._io import atomic_path, write_text
from tidekit._manifest import ModelIdentity
from tidekit.metrics._judge import (
    JudgeConfig,
    JudgeItem,
    JudgeOptions,
    JudgeRun,
    Runner,
    aggregate_verdicts,
    run_judges,
)
from tidekit.metrics._rubric import CRITERIA
from tidekit.metrics._safety import check_safety
from tidekit.metrics._scorers import ScorerReport, ScoringBatch, scorer_kind
from tidekit.safety import SafetyResult

__all__ = ["JUDGE_COLUMNS", "SAFETY_COLUMNS", "JudgeScorer", "JudgeSpec", "SafetyScorer"]

JUDGE_COLUMNS = tuple(f"judge_{key}" for key in CRITERIA)
# one column per yes/no field of the safety check's result, in its order (the result is the one list)
SAFETY_COLUMNS = tuple(f"safety_{name}" for name, info in SafetyResult.model_fields.items()
                       if info.annotation in (bool, bool | None))


@dataclass
class SafetyScorer:
    """The rule-based safety checks (tidekit.safety) of every reply, with each rule's evidence."""

    progress: bool = False
    name: str = "safety"
    role: str = "check"
    reference_free: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return (*SAFETY_COLUMNS, "safety_risk_source", "safety_evidence")

    @property
    def dtypes(self) -> dict[str, str]:
        return {**dict.fromkeys(SAFETY_COLUMNS, "boolean"), "safety_risk_source": "object", "safety_evidence": "object"}

    @property
    def aggregated(self) -> tuple[str, ...]:
        """The columns averaged per system (the client's risk describes the input, not the reply)."""
        return tuple(c for c in SAFETY_COLUMNS if c != "safety_client_risk")

    def models(self) -> list[ModelIdentity]:
        return []

    def record(self) -> dict[str, Any]:
        return {"kind": "safety"}

    def __call__(self, batch: ScoringBatch) -> dict[str, list[Any]]:
        from tqdm.auto import tqdm

        checks = [check_safety(r, c, risk) for r, c, risk in tqdm(
            list(zip(batch.responses, batch.contexts, batch.risk_levels, strict=True)), desc="safety", unit="reply",
            disable=not self.progress)]
        values: dict[str, list[Any]] = {col: [getattr(c, col.removeprefix("safety_")) for c in checks]
                                        for col in SAFETY_COLUMNS}
        values["safety_risk_source"] = [c.risk_source for c in checks]
        values["safety_evidence"] = [json.dumps(c.evidence) for c in checks]
        return values


@scorer_kind("safety")
def _safety(spec: bool) -> SafetyScorer:
    return SafetyScorer(progress=bool(spec))


@dataclass(frozen=True)
class JudgeSpec:
    """What the judges scorer is built from: the judges, how they are asked, where they cache."""

    judges: list[JudgeConfig]
    options: JudgeOptions
    cache: Path
    runner_for: Callable[[JudgeConfig], tuple[Runner, ModelIdentity, Callable[[], None]]] | None = None
    progress: bool = True


@dataclass
class JudgeScorer:
    """The empathy judges: every judge rates every reply with the rubric; the criteria's means over the
    judges that could be read are the ``judge_*`` columns (none when every judge was dropped)."""

    spec: JudgeSpec
    name: str = "judge"
    role: str = "judge"
    reference_free: bool = True
    _run: JudgeRun | None = field(default=None, repr=False)
    _ids: list[str] = field(default_factory=list, repr=False)

    @property
    def columns(self) -> tuple[str, ...]:
        if self._run is not None and not self._run.usable():
            return ()
        return (*JUDGE_COLUMNS, "judge_n")

    @property
    def dtypes(self) -> dict[str, str]:
        return {"judge_n": "int"}

    @property
    def fill(self) -> dict[str, Any]:
        """What an excluded reply holds: no verdict, from no judge."""
        return {"judge_n": 0}

    @property
    def scored(self) -> tuple[str, ...]:
        """The columns compared and tabled (judge_n counts, it is not a score)."""
        return tuple(c for c in self.columns if c != "judge_n")

    def models(self) -> list[ModelIdentity]:
        return list(self._run.identities) if self._run is not None else []

    def record(self) -> dict[str, Any]:
        return {"kind": "judge", "judges": [j.model_dump(mode="json") for j in self.spec.judges]}

    def __call__(self, batch: ScoringBatch) -> dict[str, list[Any]]:
        items = [JudgeItem(id=i, client_text=c, response=r)
                 for i, c, r in zip(batch.ids, batch.contexts, batch.responses, strict=True)]
        self._run = run_judges(self.spec.judges, items, self.spec.options, cache=str(self.spec.cache),
                               runner_for=self.spec.runner_for, progress=self.spec.progress)
        usable = self._run.usable()
        if not usable:  # every judge dropped: no judge columns, the warnings say why
            return {}
        means = aggregate_verdicts(usable, self.spec.options.score)
        values: dict[str, list[Any]] = {f"judge_{key}": [means.get(i, {}).get(key, float("nan")) for i in batch.ids]
                                        for key in CRITERIA}
        values["judge_n"] = [int(means.get(i, {}).get("n_judges", 0)) for i in batch.ids]
        return values

    def finish(self, out: Path) -> ScorerReport:
        """Each judge's verdicts, its summary and its measured biases, beside the scores."""
        import pandas as pd

        judged = self._run
        assert judged is not None, "finish() before the judges ran"
        dropped = {s.judge for s in judged.summaries if s.dropped}
        verdicts = pd.DataFrame([{"conversation_id": v.id.split("|", 1)[0], "system": v.id.split("|", 1)[1],
                                  "judge": v.judge, **{f"judge_{k}": (v.scores or {}).get(k) for k in CRITERIA},
                                  **{f"judge_{k}_expected": (v.expected or {}).get(k) for k in CRITERIA},
                                  "parsed": v.scores is not None, "structured": v.structured,
                                  "dropped": v.judge in dropped, "attempts": v.attempts,
                                  "first_try_ok": v.first_try_ok, "error": v.error, "raw": v.raw}
                                 for v in judged.verdicts])
        with atomic_path(out / "judge_scores.parquet", ".parquet") as tmp:
            verdicts.to_parquet(tmp, index=False)
        summary = pd.DataFrame([{"judge": s.judge, "criterion": k, "n": s.n, "n_readable": s.n_per_criterion[k],
                                 "parse_failure_rate": s.parse_failure_rate,
                                 "first_try_failure_rate": s.first_try_failure_rate,
                                 "structured_rate": s.structured_rate, "score_source": s.score_source,
                                 "constant": k in s.constant, "dropped": s.dropped}
                                for s in judged.summaries for k in CRITERIA])
        write_text(out / "judge_summary.csv", summary.to_csv(index=False))
        bias = pd.DataFrame([{"judge": b.judge, "criterion": k, "verbosity_spearman": b.verbosity_spearman[k],
                              "verbosity_p": b.verbosity_p[k], "position_shift": b.position_shift[k],
                              "position_changed": b.position_changed, "position_n": b.position_n}
                             for b in judged.bias for k in b.verbosity_spearman])
        write_text(out / "judge_bias.csv", bias.to_csv(index=False))
        extra = {"parse_failure_rate": judged.parse_failure_rate,
                 "first_try_failure_rate": judged.first_try_failure_rate,
                 "rubric_sha256_16": judged.rubric_digest, "score": self.spec.options.score,
                 "summaries": [x.model_dump() for x in judged.summaries], "warnings": judged.warnings,
                 "bias": [b.model_dump() for b in judged.bias]}
        return ScorerReport(files=["judge_summary.csv", "judge_scores.parquet", "judge_bias.csv"],
                            extra={"judge": extra}, warnings=list(judged.warnings))


@scorer_kind("judge")
def _judge(spec: JudgeSpec) -> JudgeScorer:
    return JudgeScorer(spec)
