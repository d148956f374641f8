"""The study's first two stages, declared here: the dataset (built by the builder or loaded) and
its persona-level split. Each is a verb of the stage shape ``verb(config, *, out) -> Result``
and a :class:`~tidekit._stage.StageSpec` saying how its config comes from the study."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tidekit._config import StrictModel
from tidekit._manifest import RunRecorder
from tidekit._stage import StageFacts, StageJob, StageSpec, StudyScale, StudyView
from tidekit.builder._build import build_dataset
from tidekit.builder._config import BuildConfig, plan_build
from tidekit.data import load_dataset, sample_path, save_dataset, save_split, split_dataset

__all__ = ["DATASET_STAGE", "SPLIT_STAGE", "DatasetStageConfig", "DatasetStageResult", "SplitStageConfig",
           "SplitStageResult", "prepare_dataset", "split_stage"]

DATA_DIR, BUILD_DIR = "data", "build"  # inside the dataset stage's folder (RunLayout.dataset_data / _build)


class DatasetStageConfig(StrictModel):
    """Where a study's conversations come from (the study's ``dataset`` section, less its split)."""

    source: Literal["build", "path", "sample"] = Field(description="Build, load from 'path', or the bundled sample.")
    path: str | None = Field(default=None, description="Dataset folder, with source: path.")
    build: BuildConfig | None = Field(default=None, description="Builder settings, with source: build.")


class DatasetFacts(StageFacts):
    personas: int
    conversations: int


class DatasetStageResult(BaseModel):
    """The dataset a study runs on, as JSONL records in ``data``."""

    data: str = Field(description="Folder of the dataset's records (JSONL).")
    personas: int
    conversations: int


def prepare_dataset(config: DatasetStageConfig, *, out: str | Path, progress: bool = True) -> DatasetStageResult:
    """The dataset stage: build the dataset (into ``out/build``) or load it, and write its records
    as JSONL to ``out/data``, so every later stage reads one layout whatever the source."""
    out = Path(out)
    if config.source == "build":
        build_cfg = config.build or BuildConfig()
        if "jsonl" not in build_cfg.formats:
            build_cfg = build_cfg.model_copy(update={"formats": [*build_cfg.formats, "jsonl"]})
        result = build_dataset(build_cfg, out=out / BUILD_DIR, progress=progress)
        dataset = load_dataset(result.formats["jsonl"])
    else:
        dataset = load_dataset(config.path if config.source == "path" and config.path else sample_path())
    save_dataset(dataset, out / DATA_DIR, "jsonl")
    return DatasetStageResult(data=str(out / DATA_DIR), personas=len(dataset.personas),
                              conversations=len(dataset.conversations))


def _fingerprint(path: Path) -> str:
    """Cheap content key of a dataset folder: names, sizes and modification times of its files."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        st = f.stat()
        digest.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _dataset_jobs(view: StudyView) -> list[StageJob]:
    section = view.config.dataset
    key: dict[str, Any] = {"dataset": section.model_dump(mode="json", exclude={"split"})}
    if section.source == "path" and section.path and Path(section.path).is_dir():
        key["fingerprint"] = _fingerprint(Path(section.path))  # an edited dataset folder reruns the study
    seeds = view.config.seeds()
    config = DatasetStageConfig(source=section.source, path=section.path, build=section.build)
    return [StageJob(config, view.layout.dataset, key, seed=seeds.get("dataset"), kwargs={"progress": view.progress},
                     estimate={"personas_seed": seeds["personas"]} if "personas" in seeds else {},
                     describe=f"dataset ({section.source})")]


def _dataset_scale(view: StudyView, scale: StudyScale) -> None:
    section = view.config.dataset
    if section.source == "build":
        b = section.build
        plan = plan_build(b.model_copy(update={"out": view.layout.dataset_build}))
        scale.personas, scale.conversations = len(plan.personas), plan.conversations
        turns = plan.conversations * b.exchanges * 2
        scale.model_calls["dataset"] = turns
        scale.model_calls_max["dataset"] = turns * (1 + b.regeneration.max_regenerations)
        scale.generated_tokens_max += plan.conversations * b.exchanges * (
            b.client.max_new_tokens + b.supporter.max_new_tokens) * (1 + b.regeneration.max_regenerations)
    else:
        dataset = load_dataset(section.location())
        scale.personas, scale.conversations = len(dataset.personas), len(dataset.conversations)


DATASET_STAGE = StageSpec(
    name="dataset", jobs=_dataset_jobs, verb=prepare_dataset, scale=_dataset_scale,
    facts=lambda r: DatasetFacts(personas=r.personas, conversations=r.conversations),
    doc="build the dataset with a teacher model, or load it (a folder or the bundled sample)")


class SplitStageConfig(StrictModel):
    """A persona-level split of a dataset folder (the study's ``dataset.split``)."""

    data: str = Field(description="The dataset folder to split.")
    ratios: tuple[float, float, float] = Field(description="train, validation, test.")
    seed: int = Field(description="Split seed.")
    stratify_by: str | None = Field(description="Persona facet to stratify on; null: none.")


class SplitFacts(StageFacts):
    train: int
    validation: int
    test: int


class SplitStageResult(BaseModel):
    """Conversations per split of the split written to ``out``."""

    out: str
    conversations: dict[str, int]


def split_stage(config: SplitStageConfig, *, out: str | Path) -> SplitStageResult:
    """The split stage: split ``config.data`` by persona and write the split (JSONL, ``splits.json``)
    and a manifest to ``out``."""
    with RunRecorder(out, command="run split", config=config, seed=config.seed, inputs={"data": config.data}) as rec:
        result = split_dataset(load_dataset(config.data), seed=config.seed, ratios=config.ratios,
                               stratify_by=config.stratify_by)
        save_split(result, out, "jsonl")
        rec.counts.update(result.conversations)
    return SplitStageResult(out=str(out), conversations=dict(result.conversations))


def _split_jobs(view: StudyView) -> list[StageJob]:
    s = view.config.dataset.split
    config = SplitStageConfig(data=str(view.layout.dataset_data), ratios=s.ratios, seed=s.seed,
                              stratify_by=s.stratify_by)
    return [StageJob(config, view.layout.split, {"split": s.model_dump(mode="json")}, seed=s.seed)]


SPLIT_STAGE = StageSpec(name="split", jobs=_split_jobs, verb=split_stage, deps=("dataset",),
                        facts=lambda r: SplitFacts(**r.conversations),
                        doc="split the dataset by persona into train, validation and test")
