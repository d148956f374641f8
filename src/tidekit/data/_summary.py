"""Summary statistics of a dataset: counts, scenarios, splits and text lengths."""

from __future__ import annotations

import statistics
from collections import Counter

from pydantic import BaseModel, Field

from tidekit.data._schema import Dataset

__all__ = ["DatasetSummary", "LengthStats", "summarize"]


class LengthStats(BaseModel):
    """Word counts of a set of texts."""

    n: int
    min: int
    median: float
    mean: float
    max: int


class DatasetSummary(BaseModel):
    """What a dataset holds."""

    personas: int = Field(description="Number of personas.")
    conversations: int = Field(description="Number of conversations.")
    with_reference: int = Field(description="Conversations that have a reference response.")
    scenarios: dict[str, int] = Field(description="Conversations per scenario id.")
    splits: dict[str, int] = Field(description="Conversations per split ('none' when unsplit).")
    client_words: LengthStats | None = Field(description="Word counts of the client's last message.")
    reference_words: LengthStats | None = Field(description="Word counts of the reference responses.")


def _lengths(texts: list[str]) -> LengthStats | None:
    if not texts:
        return None
    words = [len(t.split()) for t in texts]
    return LengthStats(n=len(words), min=min(words), median=statistics.median(words),
                       mean=round(statistics.fmean(words), 2), max=max(words))


def summarize(dataset: Dataset) -> DatasetSummary:
    """Compute the summary of ``dataset``."""
    refs = [c.reference for c in dataset.conversations if c.reference is not None]
    return DatasetSummary(
        personas=len(dataset.personas),
        conversations=len(dataset.conversations),
        with_reference=len(refs),
        scenarios=dict(sorted(dataset.scenario_counts().items())),
        splits=dict(sorted(Counter(c.split or "none" for c in dataset.conversations).items())),
        client_words=_lengths([c.client_text for c in dataset.conversations]),
        reference_words=_lengths(refs),
    )
