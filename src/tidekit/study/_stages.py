"""The stages of a study, in order: the one list the runner and the dry run read.

Each spec is declared in its stage's own package (``tidekit._stage.StageSpec``: name, jobs from
the study config, folder, dependencies, verb, facts). Adding a stage is a new module with its
spec plus one line here (docs/developing.md); the runner knows no stage by name.
"""

from __future__ import annotations

from tidekit._stage import StageSpec
from tidekit.analysis import ANALYSIS_STAGE, CEILING_STAGE
from tidekit.builder import DATASET_STAGE, SPLIT_STAGE
from tidekit.finetuning import FINETUNE_STAGE
from tidekit.generation import GENERATE_STAGE
from tidekit.metrics import JUDGE_VALIDATION_STAGE, SCORE_STAGE
from tidekit.rating import RATING_STAGE
from tidekit.reporting import REPORT_STAGE

__all__ = ["STAGES"]

STAGES: tuple[StageSpec, ...] = (
    DATASET_STAGE,
    SPLIT_STAGE,
    FINETUNE_STAGE,
    GENERATE_STAGE,
    SCORE_STAGE,
    CEILING_STAGE,
    JUDGE_VALIDATION_STAGE,
    RATING_STAGE,
    ANALYSIS_STAGE,
    REPORT_STAGE,
)
