"""The study's analysis stages, declared here: ``ceiling`` (fine-tuning gain against model size,
when two or more models have both conditions) and ``analysis`` (the statistics on the ratings),
with the dry run's account of the rated subset and its prediction-powered design."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tidekit._config import StrictModel
from tidekit._stage import SparseModel, StageFacts, StageJob, StageSpec, StudyScale, StudyView
from tidekit.analysis._analyze import analyze
from tidekit.analysis._ceiling import ceiling_analysis
from tidekit.analysis._power import rated_for_width

__all__ = ["ANALYSIS_STAGE", "CEILING_STAGE", "CeilingStageConfig", "CeilingStageResult", "RatedSubset",
           "ceiling_stage", "rated_subset"]


class CeilingStageConfig(StrictModel):
    """The ceiling analysis of a scores table."""

    scores: str = Field(description="scores.parquet with zero_shot and fine_tuned rows of two or more models.")
    models: list[str] = Field(description="The models with both conditions.")


class CeilingStageResult(BaseModel):
    out: str
    models: int = Field(description="Models analysed.")
    files: list[str]


class CeilingFacts(StageFacts):
    ceiling_models: int


def ceiling_stage(config: CeilingStageConfig, *, out: str | Path) -> CeilingStageResult:
    """The ceiling stage: :func:`ceiling_analysis` of ``config.scores``, written to ``out``."""
    files = ceiling_analysis(config.scores).write(out, source=config.scores)
    return CeilingStageResult(out=str(out), models=len(config.models), files=[str(f) for f in files])


def _ceiling_jobs(view: StudyView) -> list[StageJob]:
    # a slope over model size needs two sizes; with one model the report says so
    both = [s.model for s in view.config.systems if {"zero_shot", "fine_tuned"} <= set(s.conditions)]
    if len(both) < 2:
        return []
    config = CeilingStageConfig(scores=str(view.layout.scores_file), models=both)
    return [StageJob(config, view.layout.ceiling, {"models": both})]


CEILING_STAGE = StageSpec(name="ceiling", jobs=_ceiling_jobs, verb=ceiling_stage, deps=("score",),
                          facts=lambda r: CeilingFacts(ceiling_models=r.models),
                          doc="fine-tuning gain against model size (two or more models in both conditions)")


def _analysis_jobs(view: StudyView) -> list[StageJob]:
    if not view.jobs("rating"):
        return []
    analysis = view.config.analysis
    ratings = view.jobs("rating")[0].out / "ratings.csv"
    return [StageJob(analysis, view.layout.analysis, {"analysis": analysis.model_dump(mode="json")},
                     seed=analysis.seed, kwargs={"ratings": ratings, "scores": view.layout.scores})]


class RatedSubset(SparseModel):
    """The rated conversations and the prediction-powered analysis of them (the dry run)."""

    rated: int = Field(description="Conversations rated.")
    of: int = Field(description="Conversations evaluated.")
    sampling: str = Field(description="How the rated ones are drawn.")
    predictor: list[str] | None = Field(default=None, description="The PPI predictor columns.")
    target_width: float | None = None
    assumed_sd: float | None = None
    assumed_correlation: float | None = None
    n_human_only: int | None = Field(default=None, description="Rated conversations the target width needs "
                                                               "human-only (null: more than evaluated).")
    n_ppi: int | None = Field(default=None, description="The same with the predictor.")
    summary: str = Field(default="", description="One line saying all that.")


def rated_subset(config: Any, eval_convs: int) -> RatedSubset:
    """The rated subset of a study config (rating and analysis.ppi) over ``eval_convs`` conversations."""
    asked = config.rating.study.conversations
    rated = min(asked, eval_convs) if asked is not None else eval_convs
    strata = getattr(config.rating.study, "strata", None)
    kind = (f"stratified random sample within {strata}, spread evenly (rating.study.strata; the analysis "
            "weights each stratum by its share)" if strata else "simple random sample")
    sampling = (f"a seeded {kind} (rating.study.conversations: {asked}, seed {config.rating.study.seed}; "
                "'tidekit rate create' records it)" if rated < eval_convs else "every evaluated conversation")
    head = f"rated subset: {rated:,} of {eval_convs:,} evaluated conversations ({sampling}); "
    ppi = config.analysis.ppi
    if ppi is None:
        return RatedSubset(rated=rated, of=eval_convs, sampling=sampling,
                           summary=head + "prediction-powered estimates off (analysis.ppi: null)")
    predictor = ", ".join(ppi.predictors())
    made = all(not p.startswith("judge_") or config.scoring.judges for p in ppi.predictors())
    sd = ppi.pilot_sd or 1.2
    rho = ppi.pilot_correlation if ppi.pilot_correlation is not None else 0.6
    human, with_ppi = rated_for_width(ppi.target_width, sd, rho, eval_convs, config.analysis.alpha)

    def count(n: int | None) -> str:
        return f"{n:,}" if n is not None else f"more than {eval_convs:,}"

    gain = (f"; a system mean to a {ppi.target_width:g}-point 95% CI needs {count(human)} rated conversations "
            f"human-only, {count(with_ppi)} with the predictor (assumed pilot sd {sd:g}, correlation {rho:g}: set "
            "analysis.ppi.pilot_sd / pilot_correlation from a pilot)")
    note = "" if made else " (not produced here: scoring.judges is empty; set analysis.ppi.predictor)"
    scope = "; every evaluated conversation is rated, so PPI adds nothing (n = N)" if rated >= eval_convs else ""
    return RatedSubset(rated=rated, of=eval_convs, sampling=sampling, predictor=ppi.predictors(),
                       target_width=ppi.target_width, assumed_sd=sd, assumed_correlation=rho, n_human_only=human,
                       n_ppi=with_ppi, summary=head + f"PPI predictor: {predictor}{note}{scope}{gain}")


def _analysis_scale(view: StudyView, scale: StudyScale) -> None:
    if view.jobs("analysis"):
        scale.rated_subset = rated_subset(view.config, scale.eval_conversations)


ANALYSIS_STAGE = StageSpec(name="analysis", jobs=_analysis_jobs, verb=analyze, facts=lambda r: StageFacts(),
                           deps=("rating", "score"), scale=_analysis_scale,
                           doc="the statistics on the ratings (and the metric-human agreement)")
