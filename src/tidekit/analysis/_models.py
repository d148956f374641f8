"""The mixed models the analyses fit: design, random-effects structure and formula text.

Every model has random intercepts for rater and item (one reply to one conversation). System
and condition comparisons also get a conversation intercept (``conversation=True``): the
conversation is the unit shared across systems, so its variation cancels from a system
contrast, and a model without it treats that variation as noise (conservative, and low
power). Where a rater rates several replies of each level, a rater-by-factor intercept
(lme4's ``(1|rater:system)``) is added when it is identifiable and small enough: without it,
raters' own preferences for one system would count as evidence that the systems differ, or
that a group of raters prefers one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tidekit.analysis._design import Design, build_design, codes
from tidekit.analysis._lmm import LMMFit, fit_lmm

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MixedModel", "fit_mixed", "pairwise_contrasts"]


@dataclass
class MixedModel:
    """A fitted model with its design and the formula that describes it."""

    fit: LMMFit
    design: Design
    formula: str
    notes: list[str] = field(default_factory=list)

    def beta_index(self, name: str) -> int | None:
        return self.fit.names.index(name) if name in self.fit.names else None

    def vector(self, coefs: dict[str, float]) -> np.ndarray | None:
        """A contrast vector over the fitted coefficients; None if a coefficient was aliased."""
        L = np.zeros(len(self.fit.beta))
        for name, w in coefs.items():
            i = self.beta_index(name)
            if i is None:
                return None
            L[i] += w
        return L

    def wald_t(self, L: np.ndarray, level: float,
               estimate_kind: str = "difference in mean rating (scale points)") -> dict[str, object]:
        """The fields of a :class:`TestResult` for the contrast ``L @ beta``: estimate, Satterthwaite t
        interval at ``level``, t, df and p."""
        r = self.fit.t_test(L, level)
        return {"test": "LMM Wald t (Satterthwaite df)", "estimate": r["estimate"], "estimate_kind": estimate_kind,
                "ci_low": r["ci_low"], "ci_high": r["ci_high"], "ci_level": level,
                "ci_method": "t, Satterthwaite df", "statistic": r["t"], "statistic_name": "t", "df": r["df"],
                "p": r["p"]}

    def term_matrix(self, term: str) -> np.ndarray:
        """Rows selecting the fitted coefficients of ``term``."""
        names = [self.design.names[i] for i in self.design.columns(term)]
        idx = [self.fit.names.index(n) for n in names if n in self.fit.names]
        return np.eye(len(self.fit.beta))[idx]


def fit_mixed(df: pd.DataFrame, factors: list[str], interactions: list[tuple[str, str]] = (),  # type: ignore[assignment]
              reference: dict[str, str] | None = None, rater_by: str | None = None,
              max_dense_levels: int = 1500, labels: dict[str, str] | None = None,
              conversation: bool = False) -> MixedModel:
    """Fit ``rating ~ factors + interactions + (1|rater) [+ (1|conversation)] + (1|item)
    [+ (1|rater:rater_by)]``; each random term only where the design identifies it (the
    notes say which were left out and why)."""
    labels = labels or {}
    design = build_design(df, factors, interactions, reference)
    groups = {"rater": codes(df["rater"])[0]}
    notes: list[str] = []
    re_terms = ["(1|rater)"]
    item_code = codes(df["item"])[0]
    if conversation and "conversation" in df and df["conversation"].notna().all():
        conv_code = codes(df["conversation"])[0]
        n_conv, n_item = int(conv_code.max()) + 1, int(item_code.max()) + 1
        if n_conv >= n_item:
            notes.append("each conversation has one rated reply: no conversation intercept (it equals the item's)")
        elif n_conv < 3:
            notes.append(f"only {n_conv} conversation(s): no conversation intercept (not estimable)")
        else:
            groups["conversation"] = conv_code
            re_terms.append("(1|conversation)")
    elif conversation:
        notes.append("no conversation column: no conversation intercept (system contrasts are then conservative)")
    if item_code.max() + 1 >= len(df):
        notes.append("each item was rated once: no item random intercept (not identifiable)")
    else:
        groups["item"] = item_code
        re_terms.append("(1|item)")
    if rater_by is not None:
        cell = df["rater"].astype(str) + "\x1f" + df[rater_by].astype(str)
        code, lv = codes(cell)
        n_cells, n_raters = len(lv), int(groups["rater"].max()) + 1
        per_cell = np.bincount(code)
        sizes = [int(g.max()) + 1 for g in groups.values()] + [n_cells]
        dense = sum(sizes) - max(sizes)  # levels left after eliminating the largest factor
        if (per_cell > 1).mean() < 0.5:
            notes.append(f"no (1|rater:{labels.get(rater_by, rater_by)}) term: most rater-by-"
                         f"{labels.get(rater_by, rater_by)} cells hold one rating (not identifiable)")
        elif n_cells == n_raters:
            pass  # each rater saw one level: the term equals the rater intercept
        elif dense > max_dense_levels:
            notes.append(f"no (1|rater:{labels.get(rater_by, rater_by)}) term: {n_cells} cells exceed "
                         f"max_dense_levels={max_dense_levels}; the rater-level test is the safer finding")
        else:
            groups["rater_by"] = code
            re_terms.append(f"(1|rater:{labels.get(rater_by, rater_by)})")
    fixed = [labels.get(f, f) for f in factors] + [f"{labels.get(a, a)}:{labels.get(b, b)}" for a, b in interactions]
    formula = f"{labels.get('rating', 'rating')} ~ " + " + ".join(fixed or ["1"]) + " + " + " + ".join(re_terms)
    fit = fit_lmm(df["rating"].to_numpy(float), design.X, design.names, groups)
    if fit.dropped:
        notes.append(f"aliased fixed effects dropped (empty or nested cells): {', '.join(fit.dropped[:6])}"
                     + (" ..." if len(fit.dropped) > 6 else ""))
    for g, v in fit.variances.items():
        if v < 1e-8:
            notes.append(f"the {g} variance is estimated at zero (boundary fit)")
    return MixedModel(fit, design, formula, notes)


def pairwise_contrasts(model: MixedModel, factor: str, max_levels: int = 10) -> list[tuple[str, str, np.ndarray]]:
    """(level_b, level_a, L) for each pair b > a of a factor's levels (b - a); vs reference if many."""
    levels = model.design.levels[factor]
    ref = levels[0]
    out = []
    pairs = ([(a, b) for i, a in enumerate(levels) for b in levels[i + 1:]] if len(levels) <= max_levels
             else [(ref, b) for b in levels[1:]])
    for a, b in pairs:
        coefs: dict[str, float] = {}
        if b != ref:
            coefs[f"{factor}[{b}]"] = 1.0
        if a != ref:
            coefs[f"{factor}[{a}]"] = coefs.get(f"{factor}[{a}]", 0.0) - 1.0
        L = model.vector(coefs)
        if L is not None:
            out.append((b, a, L))
    return out
