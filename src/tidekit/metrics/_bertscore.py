"""BERTScore (Zhang et al. 2020) with a local encoder, computed by the bert-score package.

tidekit calls ``bert_score.BERTScorer`` itself, so values are the reference implementation's.
The encoder defaults to the local all-MiniLM-L6-v2 folder (any transformers encoder folder or
registry alias works) and ``num_layers`` picks the layer whose token embeddings are matched;
6, the last layer of MiniLM-L6, is chosen here (bert-score only tunes layers for the Hub models
in its own table). No IDF weighting and no baseline rescaling by default: rescaling needs
baseline files bert-score ships only for its listed models.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from tidekit.backends import resolve_model_path
from tidekit.errors import MissingDependencyError
from tidekit.metrics._registry import MetricScores, metric

__all__ = ["bertscore", "load_bertscorer"]


@functools.lru_cache(maxsize=2)
def load_bertscorer(model: str, num_layers: int, batch_size: int, device: str) -> Any:
    """A ``bert_score.BERTScorer`` for a local encoder (cached per process)."""
    try:
        from bert_score import BERTScorer
    except ImportError:
        raise MissingDependencyError("BERTScore", "bert-score", "pip install 'tidekit[ml]'") from None

    return BERTScorer(model_type=str(resolve_model_path(model)), num_layers=num_layers,
                      batch_size=batch_size, device=device, idf=False, rescale_with_baseline=False)


@metric("bertscore", columns=("bertscore_precision", "bertscore_recall", "bertscore_f1"),
        description="BERTScore P/R/F1 with a local encoder (bert-score package).")
def bertscore(model: str = "minilm-l6", num_layers: int = 6, batch_size: int = 64,
              device: str = "cpu") -> Callable[[Sequence[str], Sequence[str]], MetricScores]:
    """BERTScore of each candidate against its reference."""

    def score(candidates: Sequence[str], references: Sequence[str]) -> MetricScores:
        scorer = load_bertscorer(model, num_layers, batch_size, device)
        p, r, f = scorer.score(list(candidates), list(references), batch_size=batch_size)
        return {"bertscore_precision": p.tolist(), "bertscore_recall": r.tolist(), "bertscore_f1": f.tolist()}

    return score
