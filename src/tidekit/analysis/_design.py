"""Treatment-coded fixed-effect design matrices for categorical factors and their interactions.

A small, fast replacement for a formula parser: ratings analyses only need categorical factors
(system, condition, scenario, rater attributes), main effects and two-way interactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Design", "build_design", "codes"]


@dataclass
class Design:
    """A design matrix with the column slice of every term."""

    X: np.ndarray
    names: list[str]
    terms: dict[str, slice]  # term name ('system', 'age:system') -> its columns
    levels: dict[str, list[str]]  # factor -> levels, reference first

    def columns(self, term: str) -> list[int]:
        s = self.terms[term]
        return list(range(s.start, s.stop))


def codes(values: pd.Series | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer codes and sorted level names of a categorical column."""
    import pandas as pd

    cat = pd.Categorical(np.asarray(values, dtype=object))
    return np.asarray(cat.codes, dtype=np.int64), [str(c) for c in cat.categories]


def build_design(df: pd.DataFrame, factors: list[str], interactions: list[tuple[str, str]] = (),  # type: ignore[assignment]
                 reference: dict[str, str] | None = None) -> Design:
    """Intercept + treatment dummies of ``factors`` + products for each pair in ``interactions``.

    The reference level of each factor is ``reference[factor]`` or the first level in sorted order.
    """
    reference = reference or {}
    n = len(df)
    blocks: list[np.ndarray] = [np.ones((n, 1))]
    names = ["(Intercept)"]
    terms: dict[str, slice] = {"(Intercept)": slice(0, 1)}
    levels: dict[str, list[str]] = {}
    dummies: dict[str, tuple[np.ndarray, list[str]]] = {}
    for f in factors:
        code, lv = codes(df[f])
        ref = reference.get(f, lv[0])
        if ref in lv and ref != lv[0]:
            order = [ref] + [x for x in lv if x != ref]
            remap = np.array([order.index(x) for x in lv])
            code, lv = remap[code], order
        levels[f] = lv
        d = np.zeros((n, len(lv) - 1))
        mask = code > 0
        d[np.nonzero(mask)[0], code[mask] - 1] = 1.0
        dummies[f] = (d, [f"{f}[{x}]" for x in lv[1:]])
        start = sum(b.shape[1] for b in blocks)
        blocks.append(d)
        names.extend(dummies[f][1])
        terms[f] = slice(start, start + d.shape[1])
    for a, b in interactions:
        da, na = dummies[a]
        db, nb = dummies[b]
        prod = (da[:, :, None] * db[:, None, :]).reshape(n, -1)
        pn = [f"{x}:{y}" for x in na for y in nb]
        keep = prod.any(axis=0)  # drop empty cells (not estimable)
        start = sum(bl.shape[1] for bl in blocks)
        blocks.append(prod[:, keep])
        names.extend([x for x, k in zip(pn, keep, strict=True) if k])
        terms[f"{a}:{b}"] = slice(start, start + int(keep.sum()))
    return Design(np.hstack(blocks), names, terms, levels)
