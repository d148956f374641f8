"""Sentence BLEU with sacrebleu (its default 13a tokenizer, exp smoothing, effective order).

Values are on sacrebleu's 0-100 scale. Sentence-level BLEU is noisy for one-sentence pairs and
is reported because reviewers expect it, not as a measure of empathy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tidekit.metrics._registry import MetricScores, metric

__all__ = ["bleu"]


@metric("bleu", columns=("bleu",), description="sacrebleu sentence BLEU (0-100).")
def bleu(tokenize: str = "13a", smooth_method: str = "exp", lowercase: bool = False
         ) -> Callable[[Sequence[str], Sequence[str]], MetricScores]:
    """Sentence BLEU of each candidate against its one reference."""
    from sacrebleu.metrics import BLEU

    scorer = BLEU(tokenize=tokenize, smooth_method=smooth_method, lowercase=lowercase, effective_order=True)

    def score(candidates: Sequence[str], references: Sequence[str]) -> MetricScores:
        return {"bleu": [scorer.sentence_score(c, [r]).score
                         for c, r in zip(candidates, references, strict=True)]}

    return score
