"""``RunLayout``: where each stage's output lives in a study folder (the one place that knows).

``tidekit run`` writes, and ``tidekit report`` reads, this layout::

    RUN/study.yaml                     the resolved configuration of the run
    RUN/dataset/data/                  the dataset's records (JSONL), RUN/dataset/build/ when built
    RUN/split/                         the persona-level split (JSONL)
    RUN/finetune/<model>/              adapter, model card, metrics.jsonl, checkpoints/
    RUN/generations/<model>__<cond>/   generations.jsonl
    RUN/scores/                        scores.parquet, aggregates.csv, comparisons.csv
    RUN/ceiling/                       ceiling.json (fine-tuning gain against model size)
    RUN/judge_validation/              validation.json (the judges against human labels)
    RUN/ratings/                       ratings.db, ratings.csv
    RUN/analysis/                      analysis.json, tables/
    RUN/report/                        report.html, figures/, tables/

Every folder also holds the stage's ``manifest.json``. A stage run on its own (``tidekit
score ... --out X``) writes the same files in the folder it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunLayout", "model_dir_name"]


def model_dir_name(model: str) -> str:
    """Folder name for a model: its alias, or the last part of a local path."""
    return Path(model).name if Path(model).exists() else model


@dataclass(frozen=True)
class RunLayout:
    """The folders of one study run, rooted at ``root``."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / "study.yaml"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def dataset_data(self) -> Path:
        """The dataset's records, whatever their source (built or loaded)."""
        return self.dataset / "data"

    @property
    def dataset_build(self) -> Path:
        return self.dataset / "build"

    @property
    def split(self) -> Path:
        return self.root / "split"

    @property
    def finetune_root(self) -> Path:
        return self.root / "finetune"

    def finetune(self, model: str) -> Path:
        return self.finetune_root / model_dir_name(model)

    @property
    def generations_root(self) -> Path:
        return self.root / "generations"

    def generations(self, model: str, condition: str) -> Path:
        return self.generations_root / f"{model_dir_name(model)}__{condition}"

    def generation_dirs(self) -> list[Path]:
        """The generation folders that exist, in name order."""
        root = self.generations_root
        return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    @property
    def scores(self) -> Path:
        return self.root / "scores"

    @property
    def scores_file(self) -> Path:
        return self.scores / "scores.parquet"

    @property
    def ceiling(self) -> Path:
        return self.root / "ceiling"

    @property
    def judge_validation(self) -> Path:
        return self.root / "judge_validation"

    @property
    def ratings(self) -> Path:
        return self.root / "ratings"

    @property
    def ratings_db(self) -> Path:
        return self.ratings / "ratings.db"

    def ratings_table(self) -> Path | None:
        """The exported long-format ratings (Parquet preferred), if any."""
        for name in ("ratings.parquet", "ratings.csv"):
            if (self.ratings / name).is_file():
                return self.ratings / name
        return None

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def report(self) -> Path:
        return self.root / "report"
