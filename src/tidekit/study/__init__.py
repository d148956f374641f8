"""Whole studies from one config: ``tidekit run STUDY.yaml`` (see docs/study.md).

    from tidekit.study import load_study, run_study, plan_study
    cfg = load_study("configs/quickstart.yaml")
    print(plan_study(cfg))        # counts, each stage's seed, engine and estimated time
    result = run_study(cfg)       # resumable; reruns only what changed

The stages are ``STAGES``, a list of ``StageSpec`` each declared in its stage's package
(docs/developing.md, "Adding a stage").
"""

from tidekit._layout import RunLayout
from tidekit._stage import StageFacts, StageJob, StageSpec, StudyView
from tidekit.study._config import StudyConfig
from tidekit.study._stages import STAGES
from tidekit.study._study import (
    StudyPlan,
    StudyResult,
    build_stages,
    load_study,
    plan_study,
    run_study,
)

__all__ = ["STAGES", "RunLayout", "StageFacts", "StageJob", "StageSpec", "StudyConfig", "StudyPlan", "StudyResult", "StudyView",
           "build_stages", "load_study", "plan_study", "run_study"]
