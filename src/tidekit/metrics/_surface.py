"""Surface statistics of a response: distinct-n (lexical diversity) and length ratio.

Both use :func:`tidekit.metrics._tokenize.words`. Distinct-n (Li et al. 2016) is computed per
response: distinct n-grams / all n-grams in that response (0 when it has no n-gram of that
order); a corpus-level variant pools the n-grams of many responses (:func:`corpus_distinct`).
Length ratio is candidate words / reference words (0 words in the reference gives NaN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from tidekit.metrics._registry import MetricScores, metric
from tidekit.metrics._tokenize import words

__all__ = ["corpus_distinct", "distinct", "distinct_n", "length_ratio"]


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of one token sequence (0.0 if there are none)."""
    grams = _ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 0.0


def corpus_distinct(texts: Iterable[str], n: int) -> float:
    """Distinct-n pooled over many texts (n-grams do not cross text boundaries)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = _ngrams(words(text), n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


@metric("distinct", columns=("distinct_1", "distinct_2"),
        description="Distinct-1 and distinct-2 of the response (reference not used).")
def distinct() -> Callable[[Sequence[str], Sequence[str]], MetricScores]:
    """Per-response distinct-1 and distinct-2."""

    def score(candidates: Sequence[str], references: Sequence[str]) -> MetricScores:
        d1, d2 = [], []
        for cand in candidates:
            tokens = words(cand)
            d1.append(distinct_n(tokens, 1))
            d2.append(distinct_n(tokens, 2))
        return {"distinct_1": d1, "distinct_2": d2}

    return score


@metric("length_ratio", columns=("length_ratio",),
        description="Words in the response / words in the reference.")
def length_ratio() -> Callable[[Sequence[str], Sequence[str]], MetricScores]:
    """Response length relative to the reference, in words."""

    def score(candidates: Sequence[str], references: Sequence[str]) -> MetricScores:
        values = []
        for cand, ref in zip(candidates, references, strict=True):
            n_ref = len(words(ref))
            values.append(len(words(cand)) / n_ref if n_ref else float("nan"))
        return {"length_ratio": values}

    return score
