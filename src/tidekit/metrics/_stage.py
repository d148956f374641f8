"""The study's scoring stages, declared here: ``score`` (every system's replies and the references)
and ``judge_validation`` (the study's judges and learned scorers against a human labels file)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field

from tidekit._config import StrictModel
from tidekit._stage import StageFacts, StageJob, StageSpec, StudyScale, StudyView
from tidekit.metrics._config import ScoreConfig
from tidekit.metrics._learned import META_FILE, read_meta
from tidekit.metrics._score import ScoreResult, score
from tidekit.metrics._validate import JudgeValidation, validate_judge

__all__ = ["JUDGE_VALIDATION_STAGE", "SCORE_STAGE", "JudgeValidationConfig", "scorer_key", "validate_judges"]


def scorer_key(path: str) -> str | None:
    """What identifies a trained scorer folder's numbers (its training run key), None when absent."""
    return str(read_meta(path).cv.get("run_key")) if (Path(path) / META_FILE).is_file() else None


def _scorer_keys(scoring: ScoreConfig) -> dict[str, list[str | None]]:
    """The learned scorers' training keys, part of a stage key: a retrained scorer reruns the stage."""
    keys = [scorer_key(spec.path) for spec in scoring.scorers]
    return {"scorers": keys} if keys else {}


class ScoreFacts(StageFacts):
    rows: int
    systems: int


def _score_jobs(view: StudyView) -> list[StageJob]:
    scoring = view.config.scoring
    config = scoring.model_copy(update={"generations": [str(job.out) for job in view.jobs("generate")],
                                        "references": str(view.layout.split)})
    return [StageJob(config, view.layout.scores, {"scoring": config.model_dump(mode="json"), **_scorer_keys(scoring)},
                     seed=config.seed, kwargs={"progress": view.progress})]


def _score_scale(view: StudyView, scale: StudyScale) -> None:
    scoring = view.config.scoring
    judged = scale.eval_conversations * (len(view.jobs("generate")) + (1 if scoring.include_reference else 0))
    scale.model_calls["judge"] = judged * len(scoring.judges)


def _score_facts(result: ScoreResult) -> ScoreFacts:
    return ScoreFacts(rows=result.rows, systems=len(result.systems))


SCORE_STAGE = StageSpec(name="score", jobs=_score_jobs, verb=score, facts=_score_facts, deps=("split", "generate"),
                        scale=_score_scale, doc="reference metrics, learned scorers, safety checks and judges")


class JudgeValidationConfig(StrictModel):
    """The judges and learned scorers of a scoring config against human labels (``tidekit judge validate``)."""

    labels: str = Field(description="CSV or JSONL with id, context, response and the human score columns.")
    human: list[str] = Field(min_length=1, description="The human score columns to validate against.")
    scoring: ScoreConfig = Field(default_factory=ScoreConfig, description="The judges, scorers and judge options.")


class JudgeValidationFacts(StageFacts):
    items: int
    parse_failure_rate: float


def validate_judges(config: JudgeValidationConfig, *, out: str | Path, progress: bool = True) -> JudgeValidation:
    """The judge-validation stage: :func:`validate_judge` in the stage shape."""
    return validate_judge(config.labels, config.human, out, config.scoring, progress=progress)


def _validation_jobs(view: StudyView) -> list[StageJob]:
    cfg = view.config
    validation = cfg.judge_validation
    if validation is None or not (cfg.scoring.judges or cfg.scoring.scorers):
        return []
    labels = Path(validation.labels)
    key = {"judge_validation": validation.model_dump(mode="json"),
           "labels_sha256": hashlib.sha256(labels.read_bytes()).hexdigest() if labels.is_file() else None,
           "judges": [j.model_dump(mode="json") for j in cfg.scoring.judges],
           "judge": cfg.scoring.judge.model_dump(mode="json"), **_scorer_keys(cfg.scoring)}
    config = JudgeValidationConfig(labels=validation.labels, human=validation.human, scoring=cfg.scoring)
    return [StageJob(config, view.layout.judge_validation, key, deps=(), kwargs={"progress": view.progress})]


JUDGE_VALIDATION_STAGE = StageSpec(
    name="judge_validation", jobs=_validation_jobs, verb=validate_judges,
    facts=lambda r: JudgeValidationFacts(items=r.n_items, parse_failure_rate=r.parse_failure_rate),
    doc="the study's judges and learned scorers against a human labels file")
