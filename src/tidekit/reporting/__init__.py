"""The study report: one self-contained HTML file (works offline), figures (PNG + SVG) and
tables (CSV, Markdown, LaTeX), built from whatever a run folder holds.

Typical use::

    from tidekit.reporting import ReportConfig, report
    result = report(ReportConfig(run="runs/study"))   # writes runs/study/report/report.html
    print(result.missing)                  # parts of the run that were absent
"""

from tidekit.reporting._config import ReportConfig
from tidekit.reporting._report import ReportResult, report
from tidekit.reporting._run import RunContents, discover_run
from tidekit.reporting._stage import REPORT_STAGE  # noqa: F401  (the study's stage specs)
from tidekit.reporting._tables import Table, to_latex, to_markdown

__all__ = ["ReportConfig", "ReportResult", "RunContents", "Table", "discover_run", "report", "to_latex", "to_markdown"]
