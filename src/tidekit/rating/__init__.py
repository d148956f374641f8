"""Human evaluation: a web app for blinded empathy ratings, its store, export and simulation.

Typical use::

    from tidekit.rating import RatingStudyConfig, create_study, simulate_ratings, export_ratings
    summary = create_study(RatingStudyConfig(ratings_per_item=3), "data/", ["gens/"], db="runs/ratings.db")
    # tidekit rate serve --db runs/ratings.db --port 8000   (raters), or for a rehearsal:
    simulate_ratings("runs/ratings.db", seed=1)
    export_ratings("runs/ratings.db", "runs/ratings/ratings.parquet")

Heavy imports (pandas) happen inside the functions that need them; the web app (FastAPI, Jinja2)
loads on first use of ``create_app`` or ``serve``.
"""

from typing import TYPE_CHECKING, Any

from tidekit.rating._config import (
    DEMOGRAPHICS,
    PREFER_NOT,
    ConsentInfo,
    RatingServeConfig,
    RatingStudyConfig,
    ScaleConfig,
)
from tidekit.rating._create import StudySummary, create_study
from tidekit.rating._demographics import (
    AGE_GROUPS,
    DEMOGRAPHIC_FIELDS,
    EDUCATION_LEVELS,
    GENDERS,
    MH_SUPPORT,
    RACE_ETHNICITY,
    TYPICAL_SHARES,
    check_answers,
    demographic_values,
)
from tidekit.rating._design import RatingPlan, build_plan, plan_bundles
from tidekit.rating._export import EXPORT_COLUMNS, ExportSummary, export_ratings, rating_frame
from tidekit.rating._migrations import MIGRATIONS, applied_migrations, migrate
from tidekit.rating._rater_model import Planted, RaterBehaviour
from tidekit.rating._simulate import (
    PlantedEffect,
    RaterModel,
    SimulationSummary,
    emotionally_layered,
    simulate_ratings,
    validation_first,
)
from tidekit.rating._stage import RATING_STAGE  # noqa: F401  (the study's stage specs)
from tidekit.rating._status import RaterProgress, StudyStatus, study_status
from tidekit.rating._store import RatingStore

__all__ = [
    "AGE_GROUPS",
    "DEMOGRAPHICS",
    "DEMOGRAPHIC_FIELDS",
    "EDUCATION_LEVELS",
    "EXPORT_COLUMNS",
    "GENDERS",
    "MH_SUPPORT",
    "MIGRATIONS",
    "PREFER_NOT",
    "RACE_ETHNICITY",
    "TYPICAL_SHARES",
    "ConsentInfo",
    "ExportSummary",
    "Planted",
    "PlantedEffect",
    "RaterBehaviour",
    "RaterModel",
    "RaterProgress",
    "RatingPlan",
    "RatingServeConfig",
    "RatingStore",
    "RatingStudyConfig",
    "ScaleConfig",
    "SimulationSummary",
    "StudyStatus",
    "StudySummary",
    "applied_migrations",
    "build_plan",
    "check_answers",
    "create_app",
    "create_study",
    "demographic_values",
    "emotionally_layered",
    "export_ratings",
    "migrate",
    "plan_bundles",
    "rating_frame",
    "serve",
    "simulate_ratings",
    "study_status",
    "validation_first",
]


if TYPE_CHECKING:
    from tidekit.rating._app import create_app, serve


def __getattr__(name: str) -> Any:
    """``create_app`` and ``serve`` on first use: the app imports FastAPI, which the store does not need."""
    if name in ("create_app", "serve"):
        from tidekit.rating import _app

        return getattr(_app, name)
    raise AttributeError(f"module 'tidekit.rating' has no attribute {name!r}")
