"""Simulated ratings with known effects, for tests, benchmarks, power and demonstrations.

The generating model is tidekit's one rater model (:mod:`tidekit.rating._rater_model`): a
crossed random-effects model on a latent scale, rounded and clipped to the 1-7 scale. Here::

    latent = 4.2 + rater_r + conversation_c + item_i + system_s + gain * fine_tuned
             + style_i * (age_style * age_rank_r + slope_r)
             + age_main * age_rank_r + gender_main * woman_r + noise

``conversation_c`` is shared by every system's reply to conversation c (how hard the message is
to answer well); ``item_i`` is the particular reply's own quality (reply SD). Raters see a
balanced set of systems (``assignment="balanced"``) or a random subset of all replies
(``assignment="random"``, as the rating app assigns items).

``style`` is 1 for replies that validate distress before offering support (here: the
fine-tuned systems) and 0 otherwise, so ``age_style`` plants the paper's "older adults prefer
validation first" as an age x condition interaction; ``age_rank`` is 0 for the youngest group,
1 for the oldest, evenly spaced over the rating app's age groups. Every row is marked
``simulated=True``, and the report labels such ratings.

Rater demographics use the rating app's one vocabulary (:mod:`tidekit.rating._demographics`):
every answer a rater can choose, drawn with ``demographics`` shares (default
``TYPICAL_SHARES``), and ``prefer_not_to_say`` for a share ``missing_attribute_rate`` of raters
per question. A rater who prefers not to say keeps the true answer that planted effects use, as
a real rater has an age whether or not they give it. The vocabulary and the rater model come
from :mod:`tidekit.rating` (a layer below the analysis), imported at the top like any tidekit name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, field_validator

from tidekit._config import StrictModel
from tidekit.rating import (
    AGE_GROUPS,
    DEMOGRAPHIC_FIELDS,
    PREFER_NOT,
    TYPICAL_SHARES,
    Planted,
    RaterBehaviour,
    check_answers,
)
from tidekit.scenarios import EMPATHY_FACTOR_IDS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SyntheticSpec", "synthetic_ratings"]



class SyntheticSpec(StrictModel):
    """A simulated rating study: design, variance components and planted effects."""

    raters: int = Field(default=60, ge=2, description="Raters.")
    conversations: int = Field(default=40, ge=1, description="Conversations (each answered by every system).")
    ratings_per_rater: int = Field(default=16, ge=1, description="Replies each rater rates (balanced over systems).")
    models: list[str] = Field(default_factory=lambda: ["smollm2-135m", "qwen2.5-0.5b"], description="Model aliases.")
    conditions: list[str] = Field(default_factory=lambda: ["zero_shot", "fine_tuned"], description="Conditions.")
    scenarios: int = Field(default=5, ge=1, description="Distinct scenarios (conversations cycle through them).")
    rater_sd: float = Field(default=0.8, ge=0, description="SD of rater intercepts.")
    item_sd: float = Field(default=0.4, ge=0, description="SD of item (reply) intercepts: a reply's own quality.")
    conversation_sd: float = Field(default=0.0, ge=0, description="SD of conversation intercepts, shared by every "
                                                                  "system's reply to a conversation.")
    assignment: Literal["balanced", "random"] = Field(
        default="balanced", description="'balanced': each rater's replies cycle through the systems; 'random': "
                                        "each rater rates a random subset of all conversation x system replies.")
    slope_sd: float = Field(default=0.2, ge=0, description="SD of raters' own preference for the style.")
    residual_sd: float = Field(default=0.9, gt=0, description="Residual SD.")
    factor_sd: float = Field(default=0.7, ge=0, description="SD of each empathy-factor rating around the "
                                                           "overall rating's latent score.")
    finetune_gain: float = Field(default=0.4, description="Fine-tuned minus zero-shot, rating points.")
    model_effects: list[float] | None = Field(default=None, description="Per-model shift (default 0, 0.2, ...).")
    age_style: float = Field(default=0.0, description="Extra preference for validate-first replies of the "
                                                      "oldest vs youngest group (points; planted interaction).")
    age_main: float = Field(default=0.0, description="Oldest minus youngest main effect (points).")
    gender_main: float = Field(default=0.0, description="Main effect of raters answering gender 'woman' over all "
                                                        "others (points).")
    demographics: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Per rater question, the share of each answer (normalised), in the rating "
                                          "app's vocabulary (docs/rating.md); questions left out use "
                                          "tidekit.rating._demographics.TYPICAL_SHARES.")
    missing_attribute_rate: float = Field(default=0.03, ge=0, le=1,
                                          description="Share of raters answering prefer_not_to_say per attribute.")
    attention_checks: int = Field(default=2, ge=0, description="Attention-check rows per rater.")
    attention_fail_rate: float = Field(default=0.05, ge=0, le=1, description="Chance a rater fails a check.")
    seed: int = Field(default=0, description="Seed.")

    @field_validator("demographics")
    @classmethod
    def _answers_a_rater_can_give(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for field, shares in value.items():
            check_answers(field, list(shares), f"demographics.{field} answers")
            if any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
                raise ValueError(f"demographics.{field} shares must be >= 0 with a positive sum, got {shares}")
        return value

    def behaviour(self) -> RaterBehaviour:
        """The rater model with this study's variance components, on the 1-7 scale."""
        return RaterBehaviour(rater_sd=self.rater_sd, item_sd=self.item_sd, noise_sd=self.residual_sd,
                              slope_sd=self.slope_sd, conversation_sd=self.conversation_sd,
                              factor_sd=self.factor_sd, points=7)


def synthetic_ratings(spec: SyntheticSpec | None = None, **overrides: object) -> pd.DataFrame:
    """A long-format ratings table with the columns of ``tidekit rate export`` (simulated=True)."""
    import pandas as pd

    spec = (spec or SyntheticSpec()).model_copy(update=overrides) if overrides else (spec or SyntheticSpec())
    spec = SyntheticSpec.model_validate(spec.model_dump())
    rng = np.random.default_rng(spec.seed)
    systems = [(m, c) for m in spec.models for c in spec.conditions]
    S, C, R = len(systems), spec.conversations, spec.raters
    behaviour = spec.behaviour()
    model_fx = spec.model_effects or [0.2 * i for i in range(len(spec.models))]
    sys_fx = np.array([model_fx[spec.models.index(m)] + (spec.finetune_gain if c == "fine_tuned" else 0.0)
                       for m, c in systems])
    style = np.array([1.0 if c == "fine_tuned" else 0.0 for _, c in systems])

    # who the raters are comes from its own stream, so the shares (or the vocabulary) never move
    # the ratings' random effects: the same seed gives the same leniencies, items and noise
    people = np.random.default_rng([spec.seed, 1])
    attrs = _draw_demographics(people, spec, R)
    age_rank, woman = _planted_weights(attrs)
    u_r = behaviour.leniency(rng, R)
    slope_r = behaviour.slopes(rng, R)
    u_i = behaviour.item_effects(rng, (C, S))
    k = spec.ratings_per_rater
    rows_r = np.repeat(np.arange(R), k)
    if spec.assignment == "random":
        if k > C * S:
            raise ValueError(f"ratings_per_rater={k} exceeds the {C * S} replies to choose from")
        picks = np.concatenate([rng.choice(C * S, size=k, replace=False) for _ in range(R)])
        rows_c, rows_s = picks // S, picks % S
    else:
        rows_s = np.concatenate([(np.arange(k) + rng.integers(S)) % S for _ in range(R)])
        rows_c = np.concatenate([rng.choice(C, size=k, replace=k > C) for _ in range(R)])
    planted = [Planted(spec.age_main, age_rank[rows_r]), Planted(spec.gender_main, woman[rows_r]),
               Planted(spec.age_style, age_rank[rows_r], style[rows_s])]
    latent = behaviour.latent(rng, 4.2 + sys_fx[rows_s], rater=u_r[rows_r], item=u_i[rows_c, rows_s],
                              style=style[rows_s], slope=slope_r[rows_r], planted=planted,
                              conversation=(rows_c, C))
    empathy = behaviour.to_scale(latent)
    facets = behaviour.factor_ratings(rng, latent, EMPATHY_FACTOR_IDS)
    sys_names = np.array([f"{m}:{c}" for m, c in systems], dtype=object)
    conv_ids = np.array([f"p{c % max(1, C // 4 or 1):03d}-c{c:03d}" for c in range(C)], dtype=object)
    scen_ids = np.array([f"scenario_{(c % spec.scenarios) + 1:02d}" for c in range(C)], dtype=object)
    df = pd.DataFrame({
        "rater_id": np.array([f"r{r:04d}" for r in range(R)], dtype=object)[rows_r],
        "item_id": conv_ids[rows_c] + "|" + sys_names[rows_s],
        "conversation_id": conv_ids[rows_c],
        "persona_id": np.array([c.split("-")[0] for c in conv_ids], dtype=object)[rows_c],
        "scenario_id": scen_ids[rows_c],
        "system": sys_names[rows_s],
        "model": np.array([m for m, _ in systems], dtype=object)[rows_s],
        "condition": np.array([c for _, c in systems], dtype=object)[rows_s],
        "is_attention_check": False,
        "attention_passed": None,
        "empathy": empathy,
        **facets,
    })
    if spec.attention_checks:
        n = R * spec.attention_checks
        rr = np.repeat(np.arange(R), spec.attention_checks)
        checks = pd.DataFrame({
            "rater_id": np.array([f"r{r:04d}" for r in range(R)], dtype=object)[rr],
            "item_id": "attention-check", "conversation_id": None, "persona_id": None, "scenario_id": None,
            "system": None, "model": None, "condition": None, "is_attention_check": True,
            "attention_passed": rng.random(n) >= spec.attention_fail_rate,
            "empathy": 7, **{f: 7 for f in facets}})
        df = pd.concat([df, checks], ignore_index=True)
    ridx = df["rater_id"].str[1:].astype(int).to_numpy()
    for name, values in _masked(people, attrs, spec.missing_attribute_rate).items():
        df[name] = values[ridx]
    df.insert(0, "rating_id", np.arange(1, len(df) + 1))
    df["comment"] = ""
    df["submitted_at"] = pd.Timestamp("2026-01-01T00:00:00Z") + pd.to_timedelta(np.arange(len(df)) * 37, unit="s")
    df["duration_s"] = np.round(rng.gamma(4.0, 8.0, len(df)), 1)
    df["simulated"] = True
    return df


def _draw_demographics(rng: np.random.Generator, spec: SyntheticSpec, raters: int) -> dict[str, np.ndarray]:
    """Each rater's true answer to every question of the rating app, drawn with the spec's shares."""
    out: dict[str, np.ndarray] = {}
    for field in DEMOGRAPHIC_FIELDS:
        shares = spec.demographics.get(field) or TYPICAL_SHARES[field]
        p = np.array(list(shares.values()), dtype=float)
        out[field] = rng.choice(np.array(list(shares), dtype=object), size=raters, p=p / p.sum())
    return out


def _planted_weights(attrs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rater weights of the planted effects: age rank (0 youngest group, 1 oldest) and woman (1/0).

    A configured ``prefer_not_to_say`` share has no age: such raters get the middle rank."""
    step = {a: i / (len(AGE_GROUPS) - 1) for i, a in enumerate(AGE_GROUPS)}
    age_rank = np.array([step.get(a, 0.5) for a in attrs["age_group"]])
    return age_rank, (attrs["gender"] == "woman").astype(float)


def _masked(rng: np.random.Generator, attrs: dict[str, np.ndarray], rate: float) -> dict[str, np.ndarray]:
    """The answers raters give: each question ``prefer_not_to_say`` for a share ``rate`` of raters."""
    out = {}
    for name, values in attrs.items():
        given = values.copy()
        given[rng.random(len(given)) < rate] = PREFER_NOT
        out[name] = given
    return out
