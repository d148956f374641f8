"""The typed records an analysis produces; ``analysis.json`` is an :class:`AnalysisResult`.

Every number travels with the test that produced it, the unit of analysis (rater, rating,
item, system), its n and the multiple-comparison correction applied, so a reader never has to
guess what a p-value means.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "ANALYSIS_FILE",
    "AgreementResult",
    "AnalysisResult",
    "DataSummary",
    "Exclusion",
    "GroupMean",
    "PPIDesignRow",
    "PPIEstimate",
    "PPIResult",
    "PowerResult",
    "TestResult",
    "largest_contrast",
    "scale_treatment",
]

ANALYSIS_FILE = "analysis.json"
ANALYSIS_SCHEMA_VERSION = 3  # 2: role, scale, primary, integer_ratings; 3: ppi
Level = Literal["rater", "rating", "item", "system", "conversation", "rater-cell"]
Role = Literal["primary", "sensitivity", "descriptive"]
Scale = Literal["interval", "ordinal", "rank", "nominal"]

# How each kind of test treats the 1-7 rating scale, by the start of its ``test`` name. The
# interval tests (means, LMMs, ANOVAs) assume equal distances between scale points; the rank
# tests use only the order; the ordinal model uses only the order and its categories.
_SCALE_BY_TEST: tuple[tuple[str, Scale], ...] = (
    ("LMM", "interval"), ("mixed ANOVA", "interval"), ("OLS", "interval"), ("Welch", "interval"),
    ("proportional-odds", "ordinal"), ("Mann-Whitney", "rank"), ("Kruskal-Wallis", "rank"),
    ("Wilcoxon", "rank"), ("Friedman", "rank"), ("Dunn", "rank"), ("Kendall", "rank"),
    ("Spearman", "rank"), ("chi-square", "nominal"),
)


def scale_treatment(test: str) -> Scale | None:
    """How a test treats the rating scale (interval, ordinal, rank or nominal), from its name."""
    for prefix, scale in _SCALE_BY_TEST:
        if test.startswith(prefix):
            return scale
    return None


class TestResult(BaseModel):
    """One statistical test or estimate."""

    __test__ = False  # not a pytest class

    family: str = Field(description="The family of tests this belongs to; corrections run within it.")
    analysis: str = Field(description="Which question: 'system', 'condition', 'demographic', ...")
    test: str = Field(description="The test, e.g. 'LMM Wald t (Satterthwaite df)' or 'Kruskal-Wallis'.")
    term: str = Field(description="What is tested: a contrast ('b - a'), a factor, or an interaction.")
    level: Level = Field(description="Unit of analysis: each observation entering the test is one of these.")
    model: str | None = Field(default=None, description="Model formula, for model-based tests.")
    estimate: float | None = Field(default=None, description="Point estimate (see estimate_kind).")
    estimate_kind: str | None = Field(default=None, description="What the estimate is, in which units.")
    ci_low: float | None = Field(default=None, description="Lower confidence limit of the estimate.")
    ci_high: float | None = Field(default=None, description="Upper confidence limit of the estimate.")
    ci_level: float | None = Field(default=None, description="Confidence level of the interval.")
    ci_method: str | None = Field(default=None, description="How the interval was computed.")
    statistic: float | None = Field(default=None, description="Test statistic.")
    statistic_name: str | None = Field(default=None, description="t, F, z, H, U, W, chi2, ...")
    df: float | None = Field(default=None, description="Degrees of freedom (numerator for F).")
    df2: float | None = Field(default=None, description="Denominator degrees of freedom (F).")
    p: float | None = Field(default=None, description="Unadjusted p-value.")
    p_adjusted: float | None = Field(default=None, description="p-value adjusted within the family.")
    correction: str | None = Field(default=None, description="Correction applied and the family size.")
    effect_size: float | None = Field(default=None, description="Effect size value.")
    effect_size_name: str | None = Field(default=None, description="epsilon_squared, rank_biserial, ...")
    effect_sizes: dict[str, float] = Field(default_factory=dict, description="Further effect sizes by name.")
    n: int = Field(description="Number of units (see level) entering the test.")
    n_ratings: int | None = Field(default=None, description="Ratings behind those units.")
    n_raters: int | None = Field(default=None, description="Distinct raters behind those units.")
    n_items: int | None = Field(default=None, description="Distinct items behind those units.")
    finding: bool = Field(default=True, description="True only for the primary test of a question (see role); "
                                                    "never report a test with finding=false as a finding.")
    role: Role = Field(default="primary", description="'primary': the configured test of its question (a "
                                                      "finding); 'sensitivity': another test of the same "
                                                      "question, shown beside it; 'descriptive': shown for "
                                                      "comparison only (rating-level or rater-paired tests).")
    scale: Scale | None = Field(default=None, description="How the test treats the rating scale: 'interval' "
                                                         "(equal distances between points), 'ordinal', 'rank' "
                                                         "or 'nominal'.")
    label: str | None = Field(default=None, description="A caveat to print beside the result.")
    flags: list[str] = Field(default_factory=list, description="Warnings: small cells, boundary fits, ...")
    extra: dict[str, Any] = Field(default_factory=dict, description="Test-specific details.")

    def model_post_init(self, __context: Any) -> None:
        if self.scale is None:
            self.scale = scale_treatment(self.test)
        if self.role != "primary":
            self.finding = False
        elif not self.finding:
            self.role = "descriptive"

    def significant(self, alpha: float = 0.05) -> bool:
        """Adjusted p (or p when unadjusted) below ``alpha``."""
        p = self.p_adjusted if self.p_adjusted is not None else self.p
        return p is not None and p < alpha


class GroupMean(BaseModel):
    """Mean rating of one group, from rater means (so each rater counts once)."""

    analysis: str = Field(description="Which breakdown: 'system', 'condition', 'scenario' or an attribute.")
    group: str = Field(description="The group's level.")
    mean: float = Field(description="Mean of the rater (or item) means.")
    ci_low: float | None = Field(default=None, description="Lower t confidence limit.")
    ci_high: float | None = Field(default=None, description="Upper t confidence limit.")
    sd: float | None = Field(default=None, description="SD of the unit means.")
    n: int = Field(description="Units averaged (raters for attributes, raters for factors).")
    n_ratings: int = Field(description="Ratings behind them.")
    unit: str = Field(default="rater", description="What was averaged first.")
    rating: str = Field(default="", description="Rating column summarised.")
    flags: list[str] = Field(default_factory=list, description="e.g. small cell.")


class Exclusion(BaseModel):
    """Rows or raters left out, and why (every exclusion is stated in the output)."""

    reason: str = Field(description="Why they were left out.")
    scope: str = Field(default="all analyses", description="Which analyses the exclusion applies to.")
    rows: int = Field(default=0, description="Rating rows left out.")
    raters: int = Field(default=0, description="Raters left out.")
    detail: list[str] = Field(default_factory=list, description="Examples (ids or values), at most 20.")


class AgreementResult(BaseModel):
    """Inter-rater agreement of one rating column."""

    rating: str = Field(description="Rating column.")
    level_of_measurement: Literal["ordinal", "interval", "nominal"] = Field(description="Distance metric.")
    alpha: float | None = Field(description="Krippendorff's alpha.")
    ci_low: float | None = Field(default=None, description="Bootstrap percentile lower limit.")
    ci_high: float | None = Field(default=None, description="Bootstrap percentile upper limit.")
    ci_level: float | None = Field(default=None, description="Confidence level.")
    bootstrap: int = Field(default=0, description="Resamples (of items) behind the CI.")
    n_items: int = Field(description="Items with at least two ratings (pairable units).")
    n_raters: int = Field(description="Raters with a rating on those items.")
    n_ratings: int = Field(description="Ratings on those items.")
    note: str | None = Field(default=None, description="Why alpha is missing, if it is.")


class PowerResult(BaseModel):
    """Power of the rater-level test for a planned study, by simulation."""

    config: dict[str, Any] = Field(description="The planned study (PowerConfig).")
    test: str = Field(description="The test whose power was simulated.")
    alpha: float = Field(description="Significance level.")
    power: float = Field(description="Fraction of simulated studies with p < alpha.")
    ci_low: float = Field(description="Wilson 95% lower limit of the power.")
    ci_high: float = Field(description="Wilson 95% upper limit.")
    simulations: int = Field(description="Simulated studies.")
    wall_s: float = Field(description="Seconds the simulation took.")


class PPIEstimate(BaseModel):
    """One prediction-powered estimate (a system's or condition's mean, or a paired difference)
    with the human-only estimate from the same rated conversations beside it."""

    kind: Literal["system", "condition", "difference"] = Field(description="What is estimated.")
    target: str = Field(description="The system or condition, or 'b - a' for a paired difference.")
    rating: str = Field(description="The rating column (the overall rating or one empathy factor).")
    estimate: float = Field(description="PPI++ estimate (rating points).")
    ci_low: float = Field(description="Lower confidence limit.")
    ci_high: float = Field(description="Upper confidence limit.")
    se: float = Field(description="Standard error.")
    p: float | None = Field(default=None, description="Two-sided p of 'difference = 0' (differences only).")
    p_adjusted: float | None = Field(default=None, description="Holm over the pairs of the same rating.")
    human_estimate: float = Field(description="Human-only mean of the same rated conversations.")
    human_ci_low: float = Field(description="Human-only lower limit (same quantile).")
    human_ci_high: float = Field(description="Human-only upper limit.")
    human_se: float = Field(description="Human-only standard error.")
    human_p: float | None = Field(default=None, description="Human-only p (differences only).")
    lam: float = Field(description="Power-tuning lambda (0: the human-only estimate).")
    correlation: float | None = Field(default=None, description="Correlation of predictor and human value "
                                                                "over the rated conversations.")
    n_rated: int = Field(description="Rated conversations entering the estimate.")
    n_unrated: int = Field(description="Conversations with only the predictor.")
    ess_ratio: float = Field(description="Human-only variance / PPI variance: the rated conversations were "
                                         "worth this many times as many without the scores.")
    effective_n: float = Field(description="n_rated x ess_ratio: human-rated conversations the estimate is "
                                           "worth.")
    width_ratio: float = Field(description="Human-only CI width / PPI CI width.")


class PPIDesignRow(BaseModel):
    """Rated conversations needed for a target CI width, with and without the predictor."""

    target: str = Field(description="What the width is for ('system mean', 'paired difference').")
    target_width: float = Field(description="Full CI width aimed at (rating points).")
    sd: float = Field(description="SD of the per-conversation human value assumed.")
    correlation: float = Field(description="Predictor-human correlation assumed.")
    conversations: int = Field(description="Conversations with the predictor (rated or not).")
    n_human_only: int | None = Field(description="Rated conversations needed without the predictor (None: "
                                                 "more than there are).")
    n_ppi: int | None = Field(description="Rated conversations needed with PPI (None: more than there are).")
    source: str = Field(description="Where sd and correlation come from (this pilot, or the config).")


class PPIResult(BaseModel):
    """Prediction-powered estimates of system means and paired differences (docs/analysis.md)."""

    predictor: list[str] = Field(description="Score column(s) used as the predictor.")
    predictor_fit: str = Field(description="How the predictor was built: the column as it is, or a "
                                           "cross-fitted least-squares combination.")
    interval: str = Field(description="The interval: quantile and variance estimator.")
    alpha: float = Field(description="1 - confidence level.")
    rater_adjustment: str = Field(description="How a reply's ratings become one human value.")
    sampling: str = Field(default="", description="How the rated conversations were drawn (the recorded design, "
                                                  "or what was assumed).")
    rated_conversations: int = Field(description="Conversations with human ratings and scores.")
    unrated_conversations: int = Field(description="Conversations with scores only.")
    systems: list[str] = Field(default_factory=list, description="Systems estimated.")
    estimates: list[PPIEstimate] = Field(default_factory=list, description="Every estimate.")
    design: list[PPIDesignRow] = Field(default_factory=list, description="Design help (with --power).")
    assumptions: list[str] = Field(default_factory=list, description="What the intervals assume, stated.")
    flags: list[str] = Field(default_factory=list, description="Checks that failed or limits of this run.")


class DataSummary(BaseModel):
    """What was analysed after exclusions."""

    ratings: int = Field(description="Rating rows analysed.")
    raters: int = Field(description="Distinct raters.")
    items: int = Field(description="Distinct items.")
    conversations: int | None = Field(default=None, description="Distinct conversations.")
    systems: list[str] = Field(default_factory=list, description="Systems rated.")
    conditions: list[str] = Field(default_factory=list, description="Conditions rated.")
    scenarios: int | None = Field(default=None, description="Distinct scenarios.")
    ratings_per_rater: dict[str, float] = Field(default_factory=dict, description="min/median/max.")
    raters_per_item: dict[str, float] = Field(default_factory=dict, description="min/median/max.")
    rating_mean: float | None = Field(default=None, description="Mean rating (all rows).")
    rating_counts: dict[str, int] = Field(default_factory=dict, description="Rows per scale point.")
    simulated: bool = Field(default=False, description="True when any rating is simulated (labelled so).")
    simulated_fraction: float = Field(default=0.0, description="Share of ratings flagged simulated.")
    attributes: dict[str, dict[str, int]] = Field(default_factory=dict,
                                                  description="Raters per level of each attribute.")
    input_rows: int = Field(default=0, description="Rows read before exclusions.")


class AnalysisResult(BaseModel):
    """Everything ``tidekit analyze`` found; written as ``analysis.json``."""

    schema_version: int = Field(default=ANALYSIS_SCHEMA_VERSION, description="Layout version of this record.")
    config: dict[str, Any] = Field(description="The resolved AnalysisConfig.")
    inputs: dict[str, str] = Field(default_factory=dict, description="Ratings and scores paths.")
    rating: str = Field(description="The rating column analysed.")
    scale: tuple[int, int] = Field(description="Scale (min, max).")
    summary: DataSummary = Field(description="What was analysed.")
    primary: dict[str, str] = Field(default_factory=dict,
                                    description="The primary test of each question (its results are the findings).")
    integer_ratings: bool = Field(default=True, description="False when some ratings are not whole scale points "
                                                            "(analysed as they are, never rounded).")
    exclusions: list[Exclusion] = Field(default_factory=list, description="What was left out, and why.")
    tests: list[TestResult] = Field(default_factory=list, description="Every test, with its family.")
    means: list[GroupMean] = Field(default_factory=list, description="Descriptive means with CIs.")
    agreement: list[AgreementResult] = Field(default_factory=list, description="Krippendorff's alpha.")
    power: PowerResult | None = Field(default=None, description="Power by simulation, when configured.")
    ppi: PPIResult | None = Field(default=None, description="Prediction-powered estimates, when scores are given.")
    skipped: list[str] = Field(default_factory=list, description="Analyses not run, and why.")
    notes: list[str] = Field(default_factory=list, description="Methodological notes for the reader.")
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per analysis step.")

    def find(self, **where: Any) -> list[TestResult]:
        """Tests whose fields equal every ``where`` value (e.g. ``analysis='demographic'``)."""
        return [t for t in self.tests if all(getattr(t, k) == v for k, v in where.items())]


def largest_contrast(contrasts: list[TestResult], exact: bool) -> dict[str, Any]:
    """Estimate fields of an LMM F test: its largest contrast (exact when the F has one df)."""
    finite = [c for c in contrasts if c.estimate is not None and math.isfinite(c.estimate)]
    if not finite:
        return {}
    c = max(finite, key=lambda t: abs(t.estimate or 0.0))
    return {"estimate": c.estimate, "ci_low": c.ci_low, "ci_high": c.ci_high, "ci_level": c.ci_level,
            "ci_method": c.ci_method if exact else f"{c.ci_method}, for that contrast (see its row)",
            "estimate_kind": c.estimate_kind if exact else f"largest contrast, {c.term}: {c.estimate_kind}"}
