"""Statistics on human ratings: model comparisons, demographic effects, agreement, metric-human
correlation, prediction-powered estimates (ratings plus automatic scores) and power by simulation;
and the ceiling analysis of scores (fine-tuning gain
against model size).

Typical use::

    from tidekit.analysis import analyze, AnalysisConfig
    config = AnalysisConfig(ratings="runs/study/ratings/ratings.parquet", scores="runs/study/scores",
                            by=["age_group", "gender"])
    result = analyze(config, out="runs/study/analysis")
    for t in result.find(analysis="demographic", finding=True):
        print(t.term, t.test, t.p_adjusted)

    from tidekit.analysis import ceiling_analysis
    ceiling = ceiling_analysis("runs/study/scores")  # zero_shot vs fine_tuned rows of scores.parquet
    ceiling.write("runs/study/ceiling", source="runs/study/scores")  # slopes.csv, gains.csv, plots

Rater attributes are tested at the rater level and with rater and item random effects (see
``_demographics``); rating-level tests are only shown beside them, labelled.
"""

from tidekit.analysis._agreement import agreement
from tidekit.analysis._analyze import analyze, apply_corrections, write_tables
from tidekit.analysis._ceiling import CeilingResult, ceiling_analysis, plot_ceiling
from tidekit.analysis._config import (
    DEFAULT_ATTRIBUTES,
    AnalysisConfig,
    Columns,
    PowerConfig,
    PPIConfig,
)
from tidekit.analysis._lmm import LMMFit, fit_lmm
from tidekit.analysis._metric_human import load_scores, metric_columns, metric_human
from tidekit.analysis._power import power_by_simulation, rated_for_width
from tidekit.analysis._ppi import ppi_mean, ppi_ols
from tidekit.analysis._ppi_analysis import summary_rows
from tidekit.analysis._ratings import PreparedRatings, load_ratings, prepare_ratings
from tidekit.analysis._results import (
    ANALYSIS_FILE,
    AgreementResult,
    AnalysisResult,
    DataSummary,
    Exclusion,
    GroupMean,
    PowerResult,
    PPIDesignRow,
    PPIEstimate,
    PPIResult,
    TestResult,
)
from tidekit.analysis._simulate import SyntheticSpec, synthetic_ratings
from tidekit.analysis._stage import ANALYSIS_STAGE, CEILING_STAGE, RatedSubset  # noqa: F401  (the study's stage specs)

__all__ = [
    "ANALYSIS_FILE",
    "DEFAULT_ATTRIBUTES",
    "AgreementResult",
    "AnalysisConfig",
    "AnalysisResult",
    "CeilingResult",
    "Columns",
    "DataSummary",
    "Exclusion",
    "GroupMean",
    "LMMFit",
    "PPIConfig",
    "PPIDesignRow",
    "PPIEstimate",
    "PPIResult",
    "PowerConfig",
    "PowerResult",
    "PreparedRatings",
    "SyntheticSpec",
    "TestResult",
    "agreement",
    "analyze",
    "apply_corrections",
    "ceiling_analysis",
    "fit_lmm",
    "load_ratings",
    "load_scores",
    "metric_columns",
    "metric_human",
    "plot_ceiling",
    "power_by_simulation",
    "ppi_mean",
    "ppi_ols",
    "prepare_ratings",
    "rated_for_width",
    "summary_rows",
    "synthetic_ratings",
    "write_tables",
]
