"""The study configuration: one YAML file describes a whole TIDE-style study.

Each section reuses the configuration model of its stage (``BuildConfig``, ``GenerationParams``,
the fine-tuning settings, ``ScoreConfig``, the rating study, ``AnalysisConfig``), so a key
means the same in ``tidekit run`` as in the stage's own command. Paths that belong to the run
(where each stage writes) are set by the runner, not the user.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from tidekit._config import StrictModel
from tidekit.analysis import AnalysisConfig
from tidekit.backends import BackendConfig, GenerationParams
from tidekit.builder import BuildConfig
from tidekit.data import DEFAULT_RATIOS, MODEL_CONDITIONS, ModelCondition, sample_path
from tidekit.finetuning import CheckpointSettings, EvalSettings, LoraSettings, TrainSettings
from tidekit.generation import ExecutorConfig
from tidekit.metrics import ScoreConfig
from tidekit.rating import RaterModel, RatingStudyConfig

__all__ = [
    "DatasetSection",
    "FinetuneSection",
    "GenerationSection",
    "JudgeValidationSection",
    "RatingSection",
    "ReportSection",
    "SplitSection",
    "StudyConfig",
    "SystemSection",
    "TrackingSection",
]

# The seeded settings of a study: stage -> dotted path of its seed in the study config. A seed the
# config does not set explicitly derives from the master seed (see derive_seed), so one number
# changes every stage's randomness and each stage still gets its own stream.
SEEDED: dict[str, str] = {
    "personas": "dataset.build.personas.seed",
    "dataset": "dataset.build.seed",
    "split": "dataset.split.seed",
    "finetune": "finetune.seed",
    "generate": "generation.params.seed",
    "score": "scoring.seed",
    "rating": "rating.study.seed",
    "analysis": "analysis.seed",
}


def derive_seed(master: int, stage: str) -> int:
    """A stage's seed from the master seed: stable across runs and machines, distinct per stage."""
    digest = hashlib.sha256(f"tidekit-seed:{master}:{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def _lookup(data: Any, path: list[str]) -> tuple[bool, Any]:
    """(is it set explicitly, the parent mapping or model) for a dotted path in raw config data."""
    node = data
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return False, None
    last = path[-1]
    if isinstance(node, dict):
        return last in node and node[last] is not None, node
    if isinstance(node, BaseModel):
        return last in node.model_fields_set and getattr(node, last) is not None, node
    return False, None


def fill_seeds(data: dict[str, Any]) -> dict[str, Any]:
    """Set each seeded stage's seed that ``data`` (a raw study config) leaves unset, from its
    master ``seed``; sections that do not exist are left alone (a dataset that is not built has
    no build seeds)."""
    master = int(data.get("seed", 0) or 0)
    for stage, dotted in SEEDED.items():
        path = dotted.split(".")
        explicit, _ = _lookup(data, path)
        if explicit:
            continue
        if path[0] == "dataset" and path[1] == "build":
            dataset = data.get("dataset") or {}
            source = dataset.get("source", "build") if isinstance(dataset, dict) else dataset.source
            if source != "build":
                continue
        node: Any = data
        for part in path[:-1]:
            child = node.get(part) if isinstance(node, dict) else getattr(node, part)
            if child is None:
                child = {}
                node[part] = child
            if isinstance(child, BaseModel):  # a section given as a model: continue in its data
                child = child.model_dump(exclude_unset=True)
                node[part] = child
            node = child
        node[path[-1]] = derive_seed(master, stage)
    return data


Condition = ModelCondition  # a study runs models; "reference" is the dataset's own reply
CONDITIONS: tuple[Condition, ...] = MODEL_CONDITIONS


class SplitSection(StrictModel):
    """Persona-level split of the dataset (see docs/data.md)."""

    ratios: tuple[float, float, float] = Field(default=DEFAULT_RATIOS, description="train, validation, test.")
    seed: int = Field(default=0, description="Split seed [in a study: derived from the master seed].")
    stratify_by: str | None = Field(default="auto", description="Persona facet to stratify on; null: none.")


class DatasetSection(StrictModel):
    """Where the conversations come from."""

    source: Literal["build", "path", "sample"] = Field(
        default="build", description="'build' a dataset with a teacher model, load one from 'path' (TIDE "
        "layout, JSONL or Parquet; e.g. the TIDE release), or use the bundled synthetic 'sample'.")
    path: str | None = Field(default=None, description="Dataset folder, with source: path.")
    build: BuildConfig | None = Field(default=None, description="Builder settings, with source: build "
                                      "(its 'out' is set by the runner).")
    split: SplitSection = Field(default_factory=SplitSection, description="How to split by persona.")

    @model_validator(mode="after")
    def _source_matches(self) -> DatasetSection:
        if self.source == "path" and not self.path:
            raise ValueError("dataset.source is 'path' but dataset.path is not set")
        if self.source == "build" and self.build is None:
            self.build = BuildConfig()
        return self

    def location(self) -> str | Path:
        """The dataset to load, for sources 'path' and 'sample'."""
        return self.path if self.source == "path" and self.path else sample_path()


class SystemSection(StrictModel):
    """One small model under test and the conditions to evaluate it in."""

    model: str = Field(description="Registry alias (see 'tidekit models') or a local model folder.")
    conditions: list[Condition] = Field(default_factory=lambda: list(CONDITIONS),
                                        description="zero_shot and/or fine_tuned (LoRA on the train split).")
    backend: BackendConfig | None = Field(default=None, description="How to run it (kind, device, dtype, "
                                          "batch size, server URL); 'model' and 'adapter' are set by the runner.")


class GenerationSection(StrictModel):
    """How the systems answer the evaluation conversations."""

    split: Literal["train", "validation", "test"] = Field(default="test", description="Split to answer.")
    limit: int | None = Field(default=None, ge=1, description="Answer only the first N conversations.")
    params: GenerationParams = Field(default_factory=lambda: GenerationParams(max_new_tokens=128, seed=0),
                                     description="Decoding (greedy by default).")


class FinetuneSection(StrictModel):
    """LoRA fine-tuning of every system with condition fine_tuned (see docs/finetune.md)."""

    lora: LoraSettings = Field(default_factory=LoraSettings, description="The adapter.")
    train: TrainSettings = Field(default_factory=TrainSettings, description="The optimisation.")
    eval: EvalSettings = Field(default_factory=EvalSettings, description="Validation loss.")
    checkpoints: CheckpointSettings = Field(default_factory=CheckpointSettings, description="Checkpoints.")
    max_train_examples: int | None = Field(default=None, ge=1, description="Use only the first N examples.")
    seed: int = Field(default=0, description="Training seed [derived from the master seed].")


class TrackingSection(StrictModel):
    """Logging the study's figures to an experiment tracker (pip install 'tidekit[tracking]')."""

    report_to: Literal["none", "tensorboard", "wandb"] = Field(
        default="none",
        description="Where 'tidekit run' logs each stage's figures as it finishes (scalars '<stage>/<fact>'): "
                    "'tensorboard' to OUT/tensorboard, 'wandb' to a W&B run under OUT/wandb (WANDB_MODE=offline "
                    "with no network). Fine-tuning stages also train with it unless finetune.train.report_to "
                    "names a tracker. Changing it reruns nothing.")


class RatingSection(StrictModel):
    """The human (or simulated) rating study."""

    enabled: bool = Field(default=True, description="Create a rating study from the generations.")
    study: RatingStudyConfig = Field(default_factory=RatingStudyConfig, description="Study design.")
    simulate: bool = Field(default=False, description="Fill the study with simulated raters (labelled "
                           "simulated in the data and the report). False: serve it to people with "
                           "'tidekit rate serve' and rerun once ratings are in.")
    simulated_raters: int | None = Field(default=None, ge=1, description="Simulated raters; null: enough "
                                         "to give every item its ratings.")
    rater_model: RaterModel = Field(default_factory=RaterModel, description="How simulated raters behave "
                                    "(see docs/rating.md), including planted demographic effects.")


class JudgeValidationSection(StrictModel):
    """Check the study's judges against human labels (``tidekit judge validate``); the report
    shows the result beside the judge scores."""

    labels: str = Field(description="CSV or JSONL with id, context, response and the human score columns "
                                    "(see docs/scoring.md).")
    human: list[str] = Field(min_length=1, description="The human score columns to validate against.")


class ReportSection(StrictModel):
    """The final report."""

    title: str | None = Field(default=None, description="Report title; default: the study name.")


class StudyConfig(StrictModel):
    """A whole study: dataset, systems, fine-tuning, scoring, ratings, analysis, report."""

    name: str = Field(description="Study name (used in the report).")
    out: Path = Field(description="Run folder; every stage writes a subfolder of it.")
    seed: int = Field(default=0, description="Master seed: every stage seed the config does not set derives from "
                                             "it (dataset, personas, split, finetune, generate, score, rating, "
                                             "analysis); the plan (--dry-run) and each manifest show the effective "
                                             "seeds.")
    dataset: DatasetSection = Field(default_factory=DatasetSection, description="The conversations.")
    systems: list[SystemSection] = Field(min_length=1, description="Models under test and their conditions.")
    generation: GenerationSection = Field(default_factory=GenerationSection, description="Answering.")
    finetune: FinetuneSection = Field(default_factory=FinetuneSection, description="LoRA fine-tuning.")
    scoring: ScoreConfig = Field(default_factory=ScoreConfig, description="Metrics, judges, safety, CIs.")
    judge_validation: JudgeValidationSection | None = Field(
        default=None, description="Validate the scoring judges against a labels file (needs scoring.judges).")
    rating: RatingSection = Field(default_factory=RatingSection, description="Human ratings.")
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig, description="Statistics on ratings.")
    report: ReportSection = Field(default_factory=ReportSection, description="The report.")
    tracking: TrackingSection = Field(default_factory=TrackingSection, description="Experiment tracker.")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig,
                                     description="Where the systems' generation runs: this process, or backend "
                                                 "replicas on Ray ({kind: ray, address: local, replicas: 4}).")

    @model_validator(mode="before")
    @classmethod
    def _derive_seeds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        scoring = data.get("scoring")
        for key in ("generations", "references"):
            if isinstance(scoring, dict) and scoring.get(key):
                raise ValueError(f"scoring.{key}: set by 'tidekit run' (the study's own generations and split); "
                                 "remove it from the study config")
        import copy

        return fill_seeds(copy.deepcopy(data))

    def seeds(self) -> dict[str, int]:
        """The effective seed of each seeded stage of this study."""
        out: dict[str, int] = {}
        for stage, dotted in SEEDED.items():
            node: Any = self
            for part in dotted.split("."):
                node = getattr(node, part, None)
                if node is None:
                    break
            if isinstance(node, int):
                out[stage] = node
        return out

    @model_validator(mode="after")
    def _unique_systems(self) -> StudyConfig:
        names = [s.model for s in self.systems]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"systems: {', '.join(dupes)} listed twice; list each model once with its conditions")
        if self.judge_validation is not None and not (self.scoring.judges or self.scoring.scorers):
            raise ValueError("judge_validation is set but scoring.judges and scoring.scorers are empty: name the "
                             "judges or learned scorers to validate")
        return self
