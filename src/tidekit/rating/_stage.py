"""The study's rating stage, declared here: a rating study over the generations, filled by
simulated raters in a rehearsal, and exported as a long-format table for the analysis."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from tidekit._config import StrictModel
from tidekit._stage import StageFacts, StageJob, StageSpec, StudyView
from tidekit.rating._config import RatingStudyConfig
from tidekit.rating._create import create_study
from tidekit.rating._export import export_ratings
from tidekit.rating._simulate import RaterModel, simulate_ratings

__all__ = ["RATING_STAGE", "RatingStageConfig", "RatingStageResult", "rating_stage"]

DB_FILE, TABLE_FILE = "ratings.db", "ratings.csv"  # in the stage's folder (RunLayout.ratings_db)


class RatingStageConfig(StrictModel):
    """A rating study over a dataset's split and generations (the study's ``rating`` section)."""

    references: str = Field(description="The split dataset the generations answer.")
    generations: list[str] = Field(description="Generation folders to rate.")
    study: RatingStudyConfig = Field(description="Study design.")
    simulate: bool = Field(description="Fill the study with simulated raters (a rehearsal).")
    simulated_raters: int | None = Field(description="Simulated raters; null: enough for every item.")
    rater_model: RaterModel = Field(description="How simulated raters behave.")


class RatingStageResult(BaseModel):
    db: str = Field(description="The study database.")
    table: str = Field(description="The exported ratings (CSV).")
    items: int = Field(description="Items to rate.")
    simulated_raters: int | None = Field(default=None, description="Simulated raters added (a rehearsal).")
    ratings: int | None = Field(default=None, description="Simulated ratings stored.")
    rows: int = Field(description="Ratings exported.")


class RatingFacts(StageFacts):
    items: int
    simulated_raters: int | None = None
    ratings: int | None = None
    rows: int


def rating_stage(config: RatingStageConfig, *, out: str | Path) -> RatingStageResult:
    """The rating stage: create the study in ``out/ratings.db``, simulate raters when asked, export
    ``out/ratings.csv``. A simulated study is rebuilt from scratch so a rerun gives the same data; a
    study with real raters is never deleted."""
    out = Path(out)
    db = out / DB_FILE
    if config.simulate and db.exists():
        for f in out.glob(f"{DB_FILE}*"):
            f.unlink()
    out.mkdir(parents=True, exist_ok=True)
    summary = create_study(config.study, config.references, config.generations, db=db)
    raters = ratings = None
    if config.simulate:
        sim = simulate_ratings(db, raters=config.simulated_raters, model=config.rater_model, seed=config.study.seed)
        raters, ratings = sim.raters, sim.ratings
    exported = export_ratings(db, out / TABLE_FILE)
    return RatingStageResult(db=str(db), table=exported.path, items=summary.items, simulated_raters=raters,
                             ratings=ratings, rows=exported.rows)


def _rating_jobs(view: StudyView) -> list[StageJob]:
    rating = view.config.rating
    if not rating.enabled:
        return []
    config = RatingStageConfig(references=str(view.layout.split),
                               generations=[str(job.out) for job in view.jobs("generate")], study=rating.study,
                               simulate=rating.simulate, simulated_raters=rating.simulated_raters,
                               rater_model=rating.rater_model)
    return [StageJob(config, view.layout.ratings, {"rating": rating.model_dump(mode="json")}, seed=rating.study.seed)]


RATING_STAGE = StageSpec(name="rating", jobs=_rating_jobs, verb=rating_stage, deps=("split", "generate"),
                         facts=lambda r: RatingFacts.model_validate(r, from_attributes=True),
                         doc="a rating study over the generations (simulated raters in a rehearsal)")
