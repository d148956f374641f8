"""Whole studies from one config: ``tidekit run STUDY.yaml`` (see docs/study.md).

    from tidekit.study import load_study, run_study, plan_study
    cfg = load_study("configs/quickstart.yaml")
    print(plan_study(cfg))        # counts, each stage's seed, engine and estimated time
    result = run_study(cfg)       # resumable; reruns only what changed
"""

from tidekit._layout import RunLayout
from tidekit.study._config import StudyConfig
from tidekit.study._study import (
    StudyPlan,
    StudyResult,
    build_stages,
    load_study,
    plan_study,
    run_study,
)

__all__ = ["RunLayout", "StudyConfig", "StudyPlan", "StudyResult", "build_stages", "load_study", "plan_study", "run_study"]
