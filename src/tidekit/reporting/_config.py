"""The report stage's configuration: which run folder to report on, and how."""

from __future__ import annotations

from pydantic import Field

from tidekit._config import StrictModel

__all__ = ["ReportConfig"]


class ReportConfig(StrictModel):
    """Everything ``tidekit report`` needs."""

    run: str = Field(description="The run folder to report on (what 'tidekit run' or the stage commands wrote).")
    title: str | None = Field(default=None, description="Report title; default: 'tidekit report: <folder name>'.")
    analyze: bool = Field(default=True, description="Analyse exported ratings first when the run has no "
                                                    "analysis yet (into RUN/analysis).")
    screenshot: bool = Field(default=False, description="Also save screenshot.png of the page rendered by "
                                                        "headless Chromium (needs playwright and chromium).")
