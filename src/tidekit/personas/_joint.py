"""Constrained joint distributions that keep both target marginals.

A consistency rule between two facets ("combat implies military service") forbids some pairs
of values. Drawing the constrained facet from its target and rejecting forbidden pairs would
skew both marginals; instead the sampler draws it from a joint distribution that is zero on the
forbidden pairs and whose marginals equal both targets exactly. Iterative proportional fitting
(alternately rescaling rows and columns of the masked product of the marginals) finds it when
it exists; when it does not, no sampler can honour the rules with these targets, and that is a
configuration error.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["JointFit", "fit_joint"]

MAX_ITERATIONS = 5000
TOLERANCE = 1e-9


class JointFit:
    """The fitted joint of a (parent, child) facet pair and the conditionals to sample with."""

    def __init__(self, parent_values: Sequence[str], child_values: Sequence[str],
                 joint: list[list[float]], residual: float) -> None:
        self.parent_values = list(parent_values)
        self.child_values = list(child_values)
        self.joint = joint
        self.residual = residual

    @property
    def feasible(self) -> bool:
        return self.residual < 1e-6

    def conditional(self) -> dict[str, dict[str, float]]:
        """P(child | parent) for every parent value with positive mass."""
        out: dict[str, dict[str, float]] = {}
        for a, row in zip(self.parent_values, self.joint, strict=True):
            total = sum(row)
            if total > 0:
                out[a] = {b: v / total for b, v in zip(self.child_values, row, strict=True)}
        return out


def fit_joint(
    parent: dict[str, float], child: dict[str, float], allowed: dict[str, set[str]]
) -> JointFit:
    """Fit a joint of ``parent`` x ``child`` with those marginals, zero outside ``allowed``.

    ``allowed[a]`` is the set of child values permitted when the parent is ``a`` (parent values
    absent from ``allowed`` permit every child value). ``residual`` is the largest marginal
    error left; it is ~0 exactly when such a joint exists.
    """
    a_vals, b_vals = list(parent), list(child)
    pa, pb = [parent[a] for a in a_vals], [child[b] for b in b_vals]
    mask = [[1.0 if b in allowed.get(a, set(b_vals)) else 0.0 for b in b_vals] for a in a_vals]
    joint = [[mask[i][j] * pa[i] * pb[j] for j in range(len(b_vals))] for i in range(len(a_vals))]
    residual = float("inf")
    for _ in range(MAX_ITERATIONS):
        for i, row in enumerate(joint):  # rows to the parent marginal
            s = sum(row)
            if s > 0:
                joint[i] = [v * pa[i] / s for v in row]
        for j in range(len(b_vals)):  # columns to the child marginal
            s = sum(joint[i][j] for i in range(len(a_vals)))
            if s > 0:
                for i in range(len(a_vals)):
                    joint[i][j] *= pb[j] / s
        row_err = max(abs(sum(row) - pa[i]) for i, row in enumerate(joint))
        col_err = max(abs(sum(joint[i][j] for i in range(len(a_vals))) - pb[j]) for j in range(len(b_vals)))
        residual = max(row_err, col_err)
        if residual < TOLERANCE:
            break
    return JointFit(a_vals, b_vals, joint, residual)
