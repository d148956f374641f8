"""The configuration of a scoring run (``tidekit score``), validated with unknown keys rejected.

Example YAML (run with ``tidekit score --config score.yaml --generations runs/gen --references
runs/data --out runs/scores``)::

    metrics:
      - {name: cosine, params: {model: minilm-l6, batch_size: 64}}
      - {name: bertscore, params: {model: minilm-l6, num_layers: 6}}
      - {name: rouge_l}
    scorers:
      - {path: runs/scorer/epitome}
    judges:
      - {backend: {kind: hf, model: smollm2-135m}}
    judge: {max_retries: 2, bias_probe_n: 20}
    bootstrap: {n_resamples: 2000, confidence: 0.95}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tidekit._config import StrictModel
from tidekit.metrics._judge import JudgeConfig, JudgeOptions
from tidekit.metrics._registry import MetricSpec
from tidekit.metrics._scorers import LearnedScorerSpec

__all__ = ["DEFAULT_METRICS", "BootstrapConfig", "ScoreConfig"]

DEFAULT_METRICS = ("cosine", "bertscore", "rouge_l", "meteor", "bleu", "distinct", "length_ratio")


class BootstrapConfig(StrictModel):
    """The persona-clustered bootstrap behind every confidence interval."""

    n_resamples: int = Field(default=2000, ge=100, le=100_000, description="Bootstrap resamples per cell.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="Interval coverage, e.g. 0.95.")


class ScoreConfig(StrictModel):
    """Everything that decides a scoring run's numbers, and its inputs."""

    generations: list[str] = Field(
        default_factory=list, description="Generations to score: generations.jsonl files, folders holding one, or "
                                          "folders of such folders ('tidekit run' fills this in).")
    references: str | None = Field(
        default=None, description="The dataset with the reference replies, any layout tidekit reads ('tidekit "
                                  "run' fills this in).")

    metrics: list[MetricSpec] = Field(
        default_factory=lambda: [MetricSpec(name=n) for n in DEFAULT_METRICS],
        description="Reference metrics to compute, each a registered name with factory params.")
    scorers: list[LearnedScorerSpec] = Field(
        default_factory=list, description="Learned empathy scorers (folders from 'tidekit scorer train'); each adds "
                                          "scorer_<name>_<label> columns.")
    include_reference: bool = Field(
        default=True, description="Add the dataset's reference replies as system 'reference'.")
    judges: list[JudgeConfig] = Field(default_factory=list, description="Empathy judges; none = no judging.")
    judge: JudgeOptions = Field(default_factory=JudgeOptions, description="How every judge is asked.")
    safety: bool = Field(default=True, description="Run the rule-based safety checks.")
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig, description="Confidence intervals.")
    comparison_unit: Literal["persona", "conversation"] = Field(
        default="persona", description="Pair systems by persona means (default) or by conversation.")
    persona_facets: list[str] = Field(
        default_factory=lambda: ["age", "age_group", "gender", "trauma_type", "co_occurring_condition", "education"],
        description="Persona fields or attributes copied into every score row (missing ones are empty).")
    max_excluded_fraction: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Fail when more than this share of generations is excluded (failed or empty output).")
    scenario_table_metric: str = Field(default="cosine", description="Metric of the per-scenario table.")
    seed: int = Field(default=0, description="Seed of the bootstrap (and sampled judging).")
