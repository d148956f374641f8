"""Multiple-comparison adjustment, shared by the scoring comparisons (``tidekit.metrics``) and the
analysis (``tidekit.analysis``): a base module so neither stage imports the other for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["adjust"]

def adjust(pvalues: Sequence[float | None], method: str) -> list[float | None]:
    """Holm ('holm') or Benjamini-Hochberg ('fdr_bh') adjusted p-values; None and NaN stay None.

    The one multiple-comparison adjustment of tidekit (``tidekit.metrics.holm`` calls it too),
    delegated to statsmodels so the step-down/step-up arithmetic is a maintained library's.
    Missing p-values (None, NaN) are left out of the family and keep their place as None.
    """
    if method not in ("holm", "fdr_bh"):
        raise ValueError(f"unknown correction {method!r}; use holm or fdr_bh")
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    out: list[float | None] = [None] * len(pvalues)
    if not idx:
        return out
    import gc

    from statsmodels.stats.multitest import multipletests

    # statsmodels' Holm branch calls gc.collect() on every call: with a model's objects on the heap
    # that took ~0.44 s a call (23.5 s of the quickstart's analysis). Freezing the heap first makes
    # the collection skip every object that existed before the call; unfreeze restores it.
    gc.freeze()
    try:
        adjusted = multipletests([float(pvalues[i]) for i in idx], method=method)[1]  # type: ignore[arg-type]
    finally:
        gc.unfreeze()
    for i, q in zip(idx, adjusted, strict=True):
        out[i] = float(q)
    return out
