"""Learned empathy scorers: a small encoder fine-tuned on human labels, loaded from its folder.

A scorer folder (written by ``tidekit scorer train``, see :mod:`tidekit.scorer`) holds:

- ``scorer.json``: :class:`ScorerMeta` (the label columns and their scales, how a pair is
  encoded, the training facts);
- ``encoder/``: the fine-tuned encoder and its tokenizer (a transformers folder);
- ``head.safetensors``: the linear head, one output per label (on the standardised scale);
- ``card.md``: the model card (cross-validated agreement with people, intended use, limits);
- ``manifest.json``: the training run's record.

The model reads a (context, reply) pair as one sequence, the reply first (``[CLS] reply [SEP]
context [SEP]``, cut longest-first to ``max_length`` tokens), mean-pools the last layer over real
tokens and maps the pool to one value per label. Predictions are returned on each label's own
scale, clipped to the range seen in training. Inference runs in fp32 in length-sorted batches.

:class:`ScorerModel` is the network shared by training and inference, with a forward that can
start from a lower layer's cached hidden states: training keeps the blocks below
``train_layers`` frozen, computes their output once per example and trains only the blocks above.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from tidekit.errors import DataError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["LabelScale", "LearnedScorer", "ScorerMeta", "ScorerModel", "load_scorer", "pair_batches",
           "scorer_column"]

META_FILE = "scorer.json"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
SCORER_SCHEMA = 1


class LabelScale(BaseModel):
    """One human label column as the scorer learned it."""

    name: str = Field(description="The label column.")
    mean: float = Field(description="Weighted mean in the training data (the head predicts (y - mean) / sd).")
    sd: float = Field(description="Weighted standard deviation in the training data.")
    low: float = Field(description="Lowest value seen in training; predictions are clipped to [low, high].")
    high: float = Field(description="Highest value seen in training.")
    integer: bool = Field(description="Every training value was a whole number (an ordinal scale).")
    n: int = Field(description="Training rows with this label.")


class ScorerMeta(BaseModel):
    """What ``scorer.json`` holds: enough to rebuild and describe the scorer."""

    schema_version: int = SCORER_SCHEMA
    name: str = Field(description="The scorer's name; score columns are scorer_<name>_<label>.")
    labels: list[LabelScale] = Field(description="The label columns, in the head's output order.")
    base_encoder: str = Field(description="The encoder it was fine-tuned from (alias or folder).")
    max_length: int = Field(description="Tokens per (reply, context) pair; longer pairs are cut longest-first.")
    pair_order: str = Field(default="response,context", description="Which text comes first in the pair.")
    train_layers: int = Field(description="Top encoder blocks that were trained (the rest stayed frozen).")
    labels_file: str = Field(description="The labels file it was trained on.")
    labels_sha256: str = Field(description="That file's sha256.")
    n_train: int = Field(description="Pairs in the final fit (after merging duplicates).")
    cv: dict[str, Any] = Field(default_factory=dict, description="Cross-validated agreement per label.")
    trained_at: str = Field(default="", description="When the final fit finished (UTC, ISO 8601).")


def scorer_column(name: str, label: str) -> str:
    """The scores.parquet column of ``label`` from scorer ``name``."""
    return f"scorer_{name}_{label}"


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("learned empathy scorers", "torch", "pip install 'tidekit[ml]'") from None
    return torch


def _additive(mask: Any, hidden: Any) -> Any:
    """The [batch, 1, 1, tokens] additive attention mask that hides padding from every query."""
    torch = _torch()
    return (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min


class ScorerModel:
    """An encoder, mean pooling and a linear head; a forward from token ids or from a cached layer."""

    def __init__(self, encoder: Any, head: Any) -> None:
        self.encoder = encoder
        self.head = head

    @classmethod
    def from_encoder(cls, path: str | Path, n_labels: int) -> ScorerModel:
        torch = _torch()
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(str(path))
        head = torch.nn.Linear(encoder.config.hidden_size, n_labels)
        return cls(encoder, head)

    @property
    def n_layers(self) -> int:
        return int(self.encoder.config.num_hidden_layers)

    def blocks(self, start: int) -> Any:
        """The encoder blocks from index ``start`` up."""
        return self.encoder.encoder.layer[start:]

    def hidden_at(self, batch: dict[str, Any], layer: int) -> Any:
        """Hidden states after ``layer`` blocks (0 = the embeddings), no gradient; only those blocks run."""
        torch = _torch()
        with torch.no_grad():
            hidden = self.encoder.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
            mask = batch["attention_mask"]
            for block in self.encoder.encoder.layer[:layer]:
                hidden = block(hidden, attention_mask=_additive(mask, hidden))
                if isinstance(hidden, tuple):
                    hidden = hidden[0]
        return hidden

    def forward_from(self, hidden: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
        """The head's outputs from the hidden states entering block ``start`` (padding masked)."""
        additive = _additive(mask, hidden)
        for block in self.blocks(start):
            hidden = block(hidden, attention_mask=additive)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
        return self.pool_head(hidden, mask)

    def pool_head(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).float()
        pooled = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        out: torch.Tensor = self.head(pooled)
        return out

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        hidden = self.encoder(**batch).last_hidden_state
        return self.pool_head(hidden, batch["attention_mask"])


def pair_batches(tokenizer: Any, encoded: dict[str, list[list[int]]], order: Sequence[int],
                 batch_size: int) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """(row indices, padded tensors) for ``order`` cut into batches of ``batch_size``."""
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    for start in range(0, len(order), batch_size):
        rows = list(order[start:start + batch_size])
        yield rows, tokenizer.pad({k: [encoded[k][i] for i in rows] for k in keys}, return_tensors="pt")


def encode_pairs(tokenizer: Any, contexts: Sequence[str], responses: Sequence[str],
                 max_length: int) -> dict[str, list[list[int]]]:
    """Token ids of each (reply, context) pair, cut longest-first to ``max_length``."""
    encoded: dict[str, list[list[int]]] = tokenizer(list(responses), list(contexts), truncation="longest_first",
                                                    max_length=max_length)
    return encoded


class LearnedScorer:
    """A trained scorer folder, ready to predict: ``scorer(contexts, responses) -> {label: values}``."""

    def __init__(self, path: Path, meta: ScorerMeta, model: ScorerModel, tokenizer: Any, device: str) -> None:
        self.path, self.meta, self.model, self.tokenizer, self.device = path, meta, model, tokenizer, device

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def labels(self) -> list[str]:
        return [s.name for s in self.meta.labels]

    def predict(self, contexts: Sequence[str], responses: Sequence[str], batch_size: int = 32,
                progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """Each label's prediction for every (context, reply) pair, on the label's own scale."""
        import numpy as np

        torch = _torch()
        if len(contexts) != len(responses):
            raise ValueError(f"{len(contexts)} contexts but {len(responses)} responses")
        raw = np.zeros((len(responses), len(self.meta.labels)))
        if not responses:
            return {s.name: raw[:, i] for i, s in enumerate(self.meta.labels)}
        encoded = encode_pairs(self.tokenizer, contexts, responses, self.meta.max_length)
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        self.model.encoder.eval()
        with torch.inference_mode():
            for rows, batch in pair_batches(self.tokenizer, encoded, order.tolist(), batch_size):
                batch = {k: v.to(self.device) for k, v in batch.items()}
                raw[rows] = self.model.forward(batch).float().cpu().numpy()
                if progress:
                    progress(len(rows))
        out = {}
        for i, s in enumerate(self.meta.labels):
            out[s.name] = np.clip(raw[:, i] * s.sd + s.mean, s.low, s.high)
        return out


def read_meta(path: str | Path) -> ScorerMeta:
    """The ``scorer.json`` of a scorer folder, with a clear error when it is not one."""
    path = Path(path)
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise DataError(f"{path}: not a scorer folder (no {META_FILE}); train one with 'tidekit scorer train "
                        "--labels FILE --label COL --out DIR' and pass DIR")
    try:
        meta = ScorerMeta.model_validate(json.loads(meta_file.read_text(encoding="utf-8")))
    except (ValueError, json.JSONDecodeError) as exc:
        raise DataError(f"{meta_file}: unreadable scorer description ({exc}); retrain the scorer") from None
    if meta.schema_version > SCORER_SCHEMA:
        raise DataError(f"{meta_file}: scorer schema {meta.schema_version} is newer than this tidekit reads "
                        f"({SCORER_SCHEMA}); upgrade tidekit")
    return meta


def load_scorer(path: str | Path, device: str = "cpu") -> LearnedScorer:
    """Load a scorer folder for prediction (fp32, eval mode)."""
    torch = _torch()
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    path = Path(path)
    meta = read_meta(path)
    for needed in (path / ENCODER_DIR, path / HEAD_FILE):
        if not needed.exists():
            raise DataError(f"{path}: the scorer folder has no {needed.name}; it is incomplete (a training run "
                            "that did not finish?) - rerun 'tidekit scorer train' with the same --out to finish it")
    model = ScorerModel.from_encoder(path / ENCODER_DIR, len(meta.labels))
    model.head.load_state_dict(load_file(str(path / HEAD_FILE)))
    model.encoder.to(device=device, dtype=torch.float32)
    model.head.to(device=device, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(path / ENCODER_DIR))
    return LearnedScorer(path, meta, model, tokenizer, device)
