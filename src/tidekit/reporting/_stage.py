"""The study's last stage, declared here: the report over the run folder."""

from __future__ import annotations

from tidekit._stage import StageFacts, StageJob, StageSpec, StudyView
from tidekit.reporting._config import ReportConfig
from tidekit.reporting._report import ReportResult, report

__all__ = ["REPORT_STAGE"]


class ReportFacts(StageFacts):
    html: str
    figures: int
    missing: int


def _report_jobs(view: StudyView) -> list[StageJob]:
    cfg = view.config
    config = ReportConfig(run=str(view.layout.root), title=cfg.report.title or cfg.name, analyze=False)
    return [StageJob(config, view.layout.report, {"report": cfg.report.model_dump(mode="json"), "name": cfg.name})]


def _facts(result: ReportResult) -> ReportFacts:
    return ReportFacts(html=str(result.html), figures=len(result.figures), missing=len(result.missing))


# the report reads every stage that writes figures or tables; it reruns when any of them does
REPORT_STAGE = StageSpec(name="report", jobs=_report_jobs, verb=report, facts=_facts,
                         deps=("score", "ceiling", "judge_validation", "analysis"),
                         doc="the self-contained HTML report, its figures and tables")
