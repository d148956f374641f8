"""The analysis configuration: which column is what, and how each family of tests runs.

Ratings collected by ``tidekit rate export`` use the default column names below; ratings from
any other tool are analysed by renaming columns here (``columns.rater=worker_id``) or with
the CLI flags (``--rater-col worker_id --by age,education``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tidekit._config import StrictModel
from tidekit.scenarios import EMPATHY_FACTOR_IDS

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "DEFAULT_EXTRA_RATINGS",
    "DEFAULT_PREDICTOR",
    "AnalysisConfig",
    "Columns",
    "PPIConfig",
    "PowerConfig",
    "PrimaryTests",
]

# Rater attribute columns written by ``tidekit rate export``; used when ``by`` is not given.
DEFAULT_ATTRIBUTES = ("age_group", "gender", "education", "race_ethnicity", "mh_support_experience")
DEFAULT_EXTRA_RATINGS = EMPATHY_FACTOR_IDS
Factor = Literal["system", "condition", "scenario"]
_FACTORS: tuple[Factor, ...] = ("system", "condition", "scenario")


class Columns(StrictModel):
    """Names of the columns in the long-format ratings table (one row per rating).

    Optional columns set to ``null`` (or absent from the table when they are optional) skip the
    analyses that need them, and the output says so.
    """

    rater: str = Field(default="rater_id", description="Who rated (required).")
    item: str = Field(default="item_id", description="What was rated: one reply to one conversation (required).")
    rating: str = Field(default="empathy", description="The rating analysed (required), on the scale below.")
    conversation: str | None = Field(default="conversation_id",
                                     description="Conversation id; joins ratings to automatic scores.")
    system: str | None = Field(default="system", description="Which system wrote the reply.")
    model: str | None = Field(default="model", description="Model alias behind the system.")
    condition: str | None = Field(default="condition", description="zero_shot / fine_tuned / reference.")
    scenario: str | None = Field(default="scenario_id", description="Emotional scenario of the conversation.")
    attention_check: str | None = Field(default="is_attention_check",
                                        description="True on attention-check rows (never analysed as ratings).")
    attention_passed: str | None = Field(default="attention_passed",
                                         description="On attention-check rows: did the rater pass it.")
    simulated: str | None = Field(default="simulated",
                                  description="True on simulated ratings; the report labels them as simulated.")
    preference: str | None = Field(default=None,
                                   description="Optional categorical preference column (e.g. the reply a "
                                               "rater preferred); tested with chi-square at the rater level.")
    extra_ratings: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTRA_RATINGS),
                                     description="Further rating columns on the same scale: agreement and "
                                                 "descriptives are reported for them too (missing ones skipped).")


FactorTest = Literal["lmm", "conversation-wilcoxon", "ordinal"]
MainTest = Literal["rater-level", "lmm", "ordinal", "trend"]
InteractionTest = Literal["rater-anova", "rater-contrast", "lmm", "preference"]


class PrimaryTests(StrictModel):
    """Which test answers each question. Only the primary test's results are findings; every
    other test of the same question is shown beside it as a sensitivity analysis
    (``role: sensitivity``, ``finding: false``) and never adds a finding."""

    system: FactorTest = Field(
        default="lmm", description="Systems differ: 'lmm' (crossed random intercepts for rater, conversation "
                                   "and reply, Satterthwaite df), 'conversation-wilcoxon' (signed-rank on "
                                   "conversation means) or 'ordinal' (proportional odds, clustered SEs).")
    condition: FactorTest = Field(default="lmm", description="Conditions differ (zero_shot, fine_tuned, "
                                                             "reference); same choices as 'system'.")
    condition_by_scenario: Literal["lmm"] = Field(
        default="lmm", description="The condition effect varies by scenario: the condition x scenario LMM.")
    demographic: MainTest = Field(
        default="rater-level", description="Main effect of a rater attribute: 'rater-level' (Mann-Whitney / "
                                           "Kruskal-Wallis on rater means, Dunn post-hoc), 'lmm', 'ordinal' or "
                                           "'trend' (ordered attributes only: Kendall's tau-b of level rank and "
                                           "rater mean, i.e. a Jonckheere-Terpstra-type test).")
    demographic_interaction: InteractionTest = Field(
        default="rater-anova", description="Attribute x within-rater factor: 'rater-anova' (mixed ANOVA on "
                                           "rater-by-level means), 'rater-contrast' (tests on each rater's "
                                           "contrast), 'lmm' or 'preference' (chi-square of preferred level).")
    attributes: dict[str, MainTest] = Field(
        default_factory=dict, description="Per-attribute override of 'demographic', e.g. {age_group: trend}.")

    def main_test(self, attribute: str) -> MainTest:
        return self.attributes.get(attribute, self.demographic)


class PowerConfig(StrictModel):
    """A planned study, for power by simulation of a rater-level demographic test."""

    raters: int = Field(default=120, ge=4, description="Planned number of raters.")
    items: int = Field(default=200, ge=2, description="Planned number of distinct items.")
    ratings_per_rater: int = Field(default=20, ge=2, description="Items each rater rates.")
    groups: int = Field(default=2, ge=2, description="Levels of the rater attribute (equal sizes).")
    effect: float = Field(default=0.5, description="Difference in rating points: for 'main', between the "
                                                   "highest and lowest group; for 'interaction', in the "
                                                   "style contrast between them.")
    kind: Literal["main", "interaction"] = Field(default="interaction",
                                                 description="Power for a main effect of the attribute, or "
                                                             "for its interaction with a 2-level response style.")
    rater_sd: float = Field(default=0.8, ge=0, description="SD of rater intercepts (rating points).")
    item_sd: float = Field(default=0.5, ge=0, description="SD of item intercepts.")
    slope_sd: float = Field(default=0.3, ge=0, description="SD of rater-specific style preferences.")
    residual_sd: float = Field(default=1.0, gt=0, description="Residual SD.")
    simulations: int = Field(default=500, ge=10, description="Number of simulated studies.")


DEFAULT_PREDICTOR = "judge_overall"


class PPIConfig(StrictModel):
    """Prediction-powered estimates (docs/analysis.md): the human ratings of the rated conversations
    corrected with an automatic score that every reply has, for narrower intervals that stay valid."""

    predictor: str | list[str] = Field(
        default=DEFAULT_PREDICTOR,
        description="The automatic score: any numeric column of the scores table (judge_overall, cosine, "
                    "scorer_<name>_<label>, ...), matched to ratings by (conversation_id, system). A list: "
                    "a least-squares combination of the columns, cross-fitted over conversation folds so "
                    "no rated reply is predicted by a fit that saw its rating. Left at the default and "
                    "absent from the scores: the estimates are skipped (stated); named and absent: an error.")
    folds: int = Field(default=5, ge=2, description="Cross-fitting folds (conversations) for a list predictor.")
    interval: Literal["t", "z"] = Field(
        default="t", description="Interval quantile: 't' (n - 1 df, unbiased variances: the small-sample "
                                 "choice) or 'z' (normal, as ppi_py; equal to ppi_py.ppi_mean_ci).")
    rater_adjustment: Literal["centre", "none"] = Field(
        default="centre", description="A reply's human value: the mean of its ratings after removing each "
                                      "rater's leniency ('centre'), or the plain mean ('none').")
    sampling: Literal["recorded", "simple_random"] = Field(
        default="recorded", description="How the rated conversations were drawn: 'recorded' reads the design "
                                        "'tidekit rate export' writes on every row (census, simple random or "
                                        "stratified, whose strata are weighted by their share; ratings without "
                                        "one are assumed a simple random sample, and the result says so); "
                                        "'simple_random' states that they are one and ignores any record.")
    target_width: float = Field(default=0.5, gt=0, description="Design help (with --power, and in a study's "
                                                               "--dry-run): the full 95% CI width, in rating "
                                                               "points, to plan the rated conversations for.")
    pilot_correlation: float | None = Field(
        default=None, ge=-1, le=1, description="Design help: correlation of the predictor with a reply's "
                                               "human value; None: measured on these ratings (0.6 in a "
                                               "study's dry-run, which has no ratings yet).")
    pilot_sd: float | None = Field(default=None, gt=0, description="Design help: SD of a reply's human value "
                                                                   "(rating points); None: measured here "
                                                                   "(1.2 in a study's dry-run).")

    def predictors(self) -> list[str]:
        """The predictor columns as a list."""
        return [self.predictor] if isinstance(self.predictor, str) else list(self.predictor)


class AnalysisConfig(StrictModel):
    """Everything ``tidekit analyze`` does, with defaults that match ``tidekit rate export``."""

    ratings: str | None = Field(default=None, description="The ratings: CSV/TSV/Parquet file, a folder holding "
                                                          "ratings.csv|parquet, or a SQLAlchemy URL ('tidekit run' "
                                                          "fills this in).")
    scores: str | None = Field(default=None, description="Scores folder or scores.parquet, for the metric-vs-"
                                                         "human correlation and the prediction-powered "
                                                         "estimates ('tidekit run' fills this in).")
    table: str = Field(default="ratings", description="Table or view name when 'ratings' is a SQLAlchemy URL.")
    columns: Columns = Field(default_factory=Columns, description="Column names in the ratings table.")
    by: list[str] | None = Field(default=None,
                                 description="Rater attribute columns to test (e.g. [age_group, education]). "
                                             "None: those of the default export that are present.")
    interactions_with: list[Factor] = Field(default_factory=lambda: list(_FACTORS),
                                            description="Within-rater factors each attribute is crossed with.")
    scale_min: int = Field(default=1, description="Lowest valid rating.")
    scale_max: int = Field(default=7, description="Highest valid rating.")
    out_of_scale: Literal["error", "exclude"] = Field(
        default="error", description="Ratings outside the scale (or not numbers): stop with an error, or "
                                     "exclude those rows and say so in the output.")
    missing_values: list[str] = Field(default_factory=lambda: ["prefer_not_to_say", "", "NA", "N/A", "nan",
                                                               "None", "unknown"],
                                      description="Attribute values treated as missing: such raters are "
                                                  "left out of that attribute's tests (stated).")
    max_failed_checks: int = Field(default=0, ge=0,
                                   description="A rater who failed more attention checks than this is "
                                               "excluded entirely.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance level (CIs are 1 - alpha).")
    correction: Literal["holm", "fdr_bh"] = Field(default="holm",
                                                  description="Multiple-comparison correction within each "
                                                              "family of tests (Holm or Benjamini-Hochberg).")
    min_cell_raters: int = Field(default=5, ge=1,
                                 description="Attribute levels (or cells) with fewer raters are flagged.")
    reference_system: str | None = Field(default=None,
                                         description="Baseline system for contrasts; None: the alphabetically "
                                                     "first.")
    primary: PrimaryTests = Field(default_factory=PrimaryTests,
                                  description="The primary (finding) test of each question; the rest are "
                                              "sensitivity analyses.")
    ordered: dict[str, list[str]] = Field(
        default_factory=dict, description="Level order of ordered rater attributes, lowest first (for trend "
                                          "tests), e.g. {education: [secondary_or_less, some_college, "
                                          "bachelors, graduate]}. The rating app's age_group and education "
                                          "are ordered by default, and levels that all start with a number "
                                          "(age bands) are ordered by it.")
    rater_paired_descriptive: bool = Field(
        default=False, description="Also show a Wilcoxon test paired by rater (each rater's mean per system): "
                                   "labelled descriptive, never a finding, because it treats the particular "
                                   "replies as fixed and over-rejects when replies vary.")
    rater_by_factor_effect: bool = Field(
        default=True, description="Add a rater-by-factor random intercept to interaction models when it is "
                                  "identifiable and small enough (rater-specific preferences would "
                                  "otherwise inflate interaction tests).")
    max_dense_levels: int = Field(default=800, ge=10,
                                  description="Largest random-effect block solved densely; larger rater-by-"
                                              "factor terms are left out (stated).")
    ordinal: Literal["clustered", "none"] = Field(
        default="clustered", description="Also fit a cumulative-logit (ordinal) model of system and condition "
                                         "with two-way (rater, item) cluster-robust errors; 'none' skips it. "
                                         "A true CLMM runs in R (see docs/analysis.md).")
    rating_level_tests: bool = Field(
        default=True, description="Also show the labelled rating-level tests beside the rater-level ones "
                                  "(never the finding; they show how pooling ratings overstates evidence).")
    bootstrap: int = Field(default=1000, ge=0, description="Bootstrap resamples for CIs (0 disables them).")
    metrics: list[str] | None = Field(default=None,
                                      description="Score columns to correlate with ratings; None: every "
                                                  "numeric metric/judge column present.")
    power: PowerConfig | None = Field(default=None, description="A planned study to compute power for.")
    ppi: PPIConfig | None = Field(default_factory=PPIConfig,
                                  description="Prediction-powered estimates of system means and paired "
                                              "differences when scores are given; null turns them off.")
    seed: int = Field(default=0, description="Seed for bootstraps and simulations.")
    workers: int = Field(default=0, ge=0, description="Processes for the analysis steps; 0: two on large data "
                                                     "(20,000+ ratings) where the machine has them, else one.")

    @model_validator(mode="after")
    def _check_scale(self) -> AnalysisConfig:
        if self.scale_max <= self.scale_min:
            raise ValueError(f"scale_max ({self.scale_max}) must be above scale_min ({self.scale_min})")
        wants_ordinal = "ordinal" in {self.primary.system, self.primary.condition, self.primary.demographic,
                                      *self.primary.attributes.values()}
        if wants_ordinal and self.ordinal == "none":
            raise ValueError("a primary test is 'ordinal' but ordinal=none turns the ordinal model off; "
                             "set ordinal=clustered")
        unknown = sorted(set(self.primary.attributes) - set(self.by or DEFAULT_ATTRIBUTES))
        if self.by is not None and unknown:
            raise ValueError(f"primary.attributes names {', '.join(unknown)}, which is not in 'by' "
                             f"({', '.join(self.by)})")
        return self
