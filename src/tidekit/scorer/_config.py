"""The configuration of ``tidekit scorer train``, validated with unknown keys rejected.

Example YAML (run with ``tidekit scorer train --config scorer.yaml --out runs/scorer``)::

    labels: data/epitome_labels.csv
    label: [er, ip, ex, total]
    group: seeker_id
    folds: 5
    epochs: 3
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tidekit._config import StrictModel

__all__ = ["ScorerTrainConfig"]


class ScorerTrainConfig(StrictModel):
    """Everything that decides a trained scorer (the labels file, the encoder, the fit, the folds)."""

    labels: str | None = Field(default=None, description="The labels file (CSV, JSONL or Parquet; a 'tidekit rate "
                                                         "export' file works too). Set by --labels.")
    label: list[str] = Field(default_factory=list, description="Label columns to learn, one head output each.")
    group: str | None = Field(default=None, description="Column whose values are kept whole across folds (a seeker "
                                                        "post, a persona); default: rows with the same context.")
    name: str | None = Field(default=None, description="The scorer's name in score columns (scorer_<name>_<label>); "
                                                       "default: the output folder's name.")
    encoder: str = Field(default="minilm-l6", description="The encoder to fine-tune: registry alias or local "
                                                          "transformers folder (a BERT-style encoder).")
    max_length: int = Field(default=160, ge=16, le=512, description="Tokens per (reply, context) pair; longer pairs "
                                                                   "are cut longest-first.")
    train_layers: int | None = Field(default=None, ge=1, description="Top encoder blocks to train (default: all); the "
                                                                     "embeddings and any block below stay frozen and "
                                                                     "run once per pair.")
    epochs: int = Field(default=3, ge=1, le=50, description="Passes over the training data per fit.")
    batch_size: int = Field(default=16, ge=1, le=512, description="Pairs per optimiser step.")
    learning_rate: float = Field(default=5e-5, gt=0, lt=1, description="AdamW peak learning rate (linear warm-up "
                                                                      "over the first tenth, then linear decay).")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    folds: int = Field(default=3, ge=0, le=20, description="Grouped cross-validation folds for the card's "
                                                          "figures (0: no cross-validation, final fit only).")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        default="auto", description="Training compute dtype: 'auto' = bf16 autocast where the CPU or GPU has native "
                                    "bf16, else fp32. Predictions are always computed in fp32.")
    device: str = Field(default="auto", description="'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'.")
    n_resamples: int = Field(default=2000, ge=100, le=100_000, description="Bootstrap resamples for the CV CIs.")
    min_rows: int = Field(default=20, ge=2, description="Fewer labelled rows than this is an error.")
    seed: int = Field(default=0, description="Seed of the folds, the head's initialisation and the batch order.")

    @field_validator("label")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        dups = sorted({v for v in value if value.count(v) > 1})
        if dups:
            raise ValueError(f"label column(s) named twice: {', '.join(dups)}")
        return value
