"""The one model of how a simulated rater scores an item, shared by every simulator in tidekit.

``tidekit rate simulate`` (:mod:`tidekit.rating._simulate`, raters going through the real
store), :func:`~tidekit.analysis.synthetic_ratings` (a ratings table in one go), the power
analysis (:mod:`tidekit.analysis._power`) and the calibration (:mod:`tidekit.analysis._calibration`,
through ``synthetic_ratings``) all score with :class:`RaterBehaviour`, so a planted effect means
the same thing in each. For rater r rating item i::

    latent = mean_i                      fixed effects of the design (system, condition, base)
           + u_r                         rater leniency, N(0, rater_sd)
           + v_i                         item (reply) quality, N(0, item_sd)
           + style_i * b_r               a rater's own taste for a reply style, b_r ~ N(0, slope_sd)
           + sum_k effect_k * w_k[r] * f_k[i]   planted effects (:class:`Planted`): a demographic
                                         main effect (f = 1) or a demographic x item-feature one
           + e                           rating noise, N(0, noise_sd)
           + c_conv                      conversation difficulty, N(0, conversation_sd), shared by
                                         every system's reply to a conversation
    rating = clip(round(latent), 1, points)
    factor = clip(round(latent + N(0, factor_sd)), 1, points)   for each empathy factor

Each simulator draws the random effects it uses through the methods here, in its own order
(its seeded studies stay reproducible); within :meth:`RaterBehaviour.latent` the noise is
drawn before the conversation effects, so a design without conversation effects never draws
them and keeps its numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["Planted", "RaterBehaviour"]


class Planted(NamedTuple):
    """A planted effect: ``effect`` points for raters with weight ``rater_weight`` (1 in the group,
    0 outside, or a rank in between) on items with ``item_feature`` (1 has it; 1.0 for all items)."""

    effect: float
    rater_weight: np.ndarray | float
    item_feature: np.ndarray | float = 1.0


@dataclass(frozen=True)
class RaterBehaviour:
    """Variance components and the rating scale of simulated raters (the module docstring)."""

    rater_sd: float
    item_sd: float
    noise_sd: float
    slope_sd: float = 0.0
    conversation_sd: float = 0.0
    factor_sd: float = 0.7
    points: int = 7

    def __post_init__(self) -> None:
        for name in ("rater_sd", "item_sd", "noise_sd", "slope_sd", "conversation_sd", "factor_sd"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.points < 2:
            raise ValueError(f"points must be >= 2, got {self.points}")

    def leniency(self, rng: np.random.Generator, raters: int) -> np.ndarray:
        """Rater intercepts u_r."""
        return rng.normal(0, self.rater_sd, raters)

    def slopes(self, rng: np.random.Generator, raters: int) -> np.ndarray:
        """Raters' own taste for the reply style, b_r."""
        return rng.normal(0, self.slope_sd, raters)

    def item_effects(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        """Item (reply) intercepts v_i."""
        return rng.normal(0, self.item_sd, shape)

    def latent(self, rng: np.random.Generator, mean: np.ndarray | float, *, rater: np.ndarray | float,
               item: np.ndarray | float, style: np.ndarray | float = 0.0, slope: np.ndarray | float = 0.0,
               planted: Sequence[Planted] = (), conversation: tuple[np.ndarray, int] | None = None,
               size: int | tuple[int, ...] | None = None) -> np.ndarray:
        """The latent score of each rating (one row per rating; arrays already indexed by row).

        ``conversation`` is (each row's conversation index, the number of conversations) when the
        design has conversations; their effects are drawn after the noise, one per conversation,
        and only when ``conversation_sd > 0``.
        """
        out = mean + rater + item + np.asarray(style) * slope
        for p in planted:
            out = out + p.effect * np.asarray(p.rater_weight) * np.asarray(p.item_feature)
        # one noise draw per rating: the shape of every term together, or ``size`` when all are scalars
        out = out + rng.normal(0, self.noise_sd, size if size is not None else np.shape(out))
        if conversation is not None and self.conversation_sd > 0:
            rows, count = conversation
            out = out + rng.normal(0, self.conversation_sd, count)[rows]
        return np.asarray(out, dtype=float)

    def to_scale(self, latent: np.ndarray) -> np.ndarray:
        """Round to the nearest scale point and clip to 1..points."""
        return np.clip(np.rint(latent), 1, self.points).astype(int)

    def factor_ratings(self, rng: np.random.Generator, latent: np.ndarray,
                       factors: Sequence[str]) -> dict[str, np.ndarray]:
        """One rating per empathy factor: the latent plus its own N(0, factor_sd) deviation, rounded."""
        return {f: self.to_scale(latent + rng.normal(0, self.factor_sd, np.shape(latent))) for f in factors}
