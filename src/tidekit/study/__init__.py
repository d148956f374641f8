"""Whole studies from one config: ``tidekit run STUDY.yaml`` (see docs/study.md).

    from tidekit.study import load_study, run_study, plan_study
    cfg = load_study("configs/quickstart.yaml")
    print(plan_study(cfg))        # counts of personas, conversations, model calls, tokens
    result = run_study(cfg)       # resumable; reruns only what changed
"""

from tidekit.study._config import StudyConfig
from tidekit.study._study import (
    StudyPlan,
    StudyResult,
    build_stages,
    load_study,
    plan_study,
    run_study,
)

__all__ = ["StudyConfig", "StudyPlan", "StudyResult", "build_stages", "load_study", "plan_study", "run_study"]
