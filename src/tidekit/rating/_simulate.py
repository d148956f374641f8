"""Simulated raters: fill a study with ratings drawn from a documented model of rater behaviour.

Used to test the analysis end to end (does it recover effects we planted, and not find ones we
did not?) and to rehearse a study before paying raters. Simulated raters go through the same
store as real ones (consent, demographics, one transaction per rating), so the export path is
exercised; their rows carry ``simulated=True``.

The model is tidekit's one rater model (:mod:`tidekit.rating._rater_model`, shared with
``synthetic_ratings`` and the power analysis); its knobs here are :class:`RaterModel`. For
rater r and item i with system s, condition c:

    latent  = base + condition_effect[c] + system_effect[s] + u_r + v_i + sum(planted) + e
    u_r ~ N(0, rater_sd)    rater leniency (a random effect shared by all of r's ratings)
    v_i ~ N(0, item_sd)     item difficulty (shared by all ratings of i)
    e   ~ N(0, noise_sd)    rating noise
    planted effect: + effect when r's demographic attribute is in ``levels`` and item i has the
                     feature (``validation_first`` / ``emotionally_layered`` / ``any``)
    empathy = clip(round(latent), 1, points); each factor = clip(round(latent + N(0, factor_sd)))

An inattentive rater (probability ``1 - attentive_share``) answers uniformly at random, so
fails attention checks; attentive raters answer checks correctly. By default older raters
(55-64 and 65+) rate validation-first replies 0.6 points higher and graduate-educated raters rate
emotionally layered replies 0.4 higher (the paper's reported patterns); there is no gender
effect. The item features are the heuristics :func:`validation_first` and
:func:`emotionally_layered`.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from tidekit._config import StrictModel
from tidekit.data import CONDITIONS, Condition
from tidekit.rating._demographics import (
    DEMOGRAPHICS,
    PREFER_NOT,
    DemographicField,
    check_answers,
)
from tidekit.rating._rater_model import Planted, RaterBehaviour
from tidekit.rating._store import FACTORS, ItemView, RatingStore, StudyFull

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "PlantedEffect",
    "RaterModel",
    "SimulationSummary",
    "emotionally_layered",
    "simulate_ratings",
    "validation_first",
]

Feature = Literal["any", "validation_first", "emotionally_layered"]
Attribute = DemographicField  # the rating app's questions: one vocabulary (_demographics.py)

_VALIDATION = re.compile(
    r"\b(that sounds|it sounds|sounds (really |so |incredibly )?(hard|painful|difficult|frightening|scary|"
    r"overwhelming|exhausting)|it makes sense|makes (complete |total )?sense|understandable|i'?m (so )?sorry|"
    r"it'?s (okay|ok|normal|natural|understandable)|you'?re not alone|that must|i can (hear|see|imagine)|"
    r"no wonder|of course you)\b", re.IGNORECASE)
_EMOTIONS = re.compile(
    r"\b(afraid|fear\w*|frighten\w*|scared|anxious|anxiety|panic\w*|ashamed|shame|guilt\w*|grie\w+|sad\w*|"
    r"angry|anger|furious|lonely|alone|isolat\w+|hopeless\w*|helpless\w*|numb\w*|overwhelm\w*|exhaust\w*|"
    r"hurt\w*|betray\w*|confus\w+|frustrat\w+|worr\w+|distress\w*|pain\w*|relie\w+)\b", re.IGNORECASE)


def validation_first(text: str) -> bool:
    """True when the reply's first sentence validates feelings (before any advice)."""
    first = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
    return bool(_VALIDATION.search(first))


def emotionally_layered(text: str) -> bool:
    """True when the reply names at least three distinct emotions."""
    return len({m.group(0).lower()[:5] for m in _EMOTIONS.finditer(text)}) >= 3


class PlantedEffect(StrictModel):
    """A demographic effect planted in simulated ratings."""

    attribute: Attribute = Field(description="Rater attribute, e.g. 'age_group'.")
    levels: list[str] = Field(min_length=1, description="Levels of the attribute that get the effect, e.g. ['55-64', '65+'].")
    item_feature: Feature = Field(default="any", description="Only on items with this feature ('any' = all items).")
    effect: float = Field(description="Added to the latent rating, in scale points.")

    @model_validator(mode="after")
    def _levels_a_rater_can_choose(self) -> PlantedEffect:
        check_answers(self.attribute, self.levels, "planted levels")
        return self


def _default_planted() -> list[PlantedEffect]:
    return [
        PlantedEffect(attribute="age_group", levels=["55-64", "65+"], item_feature="validation_first", effect=0.6),
        PlantedEffect(attribute="education", levels=["graduate"], item_feature="emotionally_layered", effect=0.4),
    ]


def _default_demographics() -> dict[str, dict[str, float]]:
    out = {}
    for field, (_, options) in DEMOGRAPHICS.items():
        levels = [v for v, _ in options if v != PREFER_NOT]
        out[field] = {**{v: 0.95 / len(levels) for v in levels}, PREFER_NOT: 0.05}
    return out


class RaterModel(StrictModel):
    """The generative model of simulated raters (see the module docstring)."""

    base: float = Field(default=3.6, description="Latent rating of a zero-shot reply by an average rater.")
    condition_effects: dict[Condition, float] = Field(
        default_factory=lambda: dict(zip(CONDITIONS, (0.0, 0.5, 1.2), strict=True)),
        description=f"Added per condition ({', '.join(CONDITIONS)}).")
    system_effects: dict[str, float] = Field(default_factory=dict, description="Added per system name, on top of the condition.")
    rater_sd: float = Field(default=0.7, ge=0, description="SD of rater leniency (random intercept).")
    item_sd: float = Field(default=0.5, ge=0, description="SD of the item effect (random intercept).")
    noise_sd: float = Field(default=0.8, ge=0, description="SD of per-rating noise.")
    factor_sd: float = Field(default=0.6, ge=0, description="SD of each factor rating around the empathy latent.")
    attentive_share: float = Field(default=0.95, ge=0, le=1, description="Share of raters who pay attention.")
    duration_mean_s: float = Field(default=25.0, gt=0, description="Median seconds per item (log-normal).")
    demographics: dict[str, dict[str, float]] = Field(
        default_factory=_default_demographics,
        description="Per attribute, the probability of each level (normalised); missing attributes use the default.")
    planted: list[PlantedEffect] = Field(default_factory=_default_planted, description="Demographic effects to plant.")

    @field_validator("demographics")
    @classmethod
    def _answers_a_rater_can_give(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for attribute, probs in value.items():
            check_answers(attribute, list(probs), f"demographics.{attribute} levels")
        return value

    def behaviour(self, points: int) -> RaterBehaviour:
        """The shared rater model with these variance components, on a 1..``points`` scale."""
        # imported here, not at the top, so that `import tidekit.rating` stays light

        return RaterBehaviour(rater_sd=self.rater_sd, item_sd=self.item_sd, noise_sd=self.noise_sd,
                              factor_sd=self.factor_sd, points=points)


class SimulationSummary(BaseModel):
    """What a simulation added."""

    raters: int = Field(description="Simulated raters added.")
    ratings: int = Field(description="Ratings stored (attention checks included).")
    inattentive: int = Field(description="Raters simulated as inattentive.")
    full: bool = Field(description="True when the study ran out of bundles.")


def _pick(rng: random.Random, probs: dict[str, float]) -> str:
    levels = list(probs)
    return rng.choices(levels, weights=[max(0.0, probs[v]) for v in levels])[0]


def simulate_ratings(
    db: str | Path | RatingStore,
    raters: int | None = None,
    model: RaterModel | None = None,
    seed: int = 0,
) -> SimulationSummary:
    """Add ``raters`` simulated raters (None: until every bundle is taken) to the study in ``db``.

    Deterministic for a given study, model and seed (item effects are seeded per item id). The
    rater's way through the study (demographics, attention, time per item) is drawn with
    :mod:`random`; the scores with the shared rater model's numpy generator.
    """
    import numpy as np

    model = model or RaterModel()
    store = db if isinstance(db, RatingStore) else RatingStore.open(db)
    try:
        info = store.info
        points = info.config.scale.points
        systems, conditions = _system_lookup(store)
        rng = random.Random(seed)
        behaviour = model.behaviour(points)
        scoring = np.random.default_rng([seed % 2**63, 1])
        demo_probs = _default_demographics() | model.demographics
        item_effect: dict[int, float] = {}
        features: dict[int, set[str]] = {}
        added = ratings = inattentive = 0
        full = False
        while raters is None or added < raters:
            try:
                _, token, _ = store.register_rater(simulated=True)
            except StudyFull:
                full = True
                break
            rater = store.rater_for_session(token)
            assert rater is not None
            demo = {field: _pick(rng, demo_probs[field]) for field in DEMOGRAPHICS}
            store.save_demographics(rater.id, demo)
            rater = store.rater_for_session(token)
            assert rater is not None
            attentive = rng.random() < model.attentive_share
            inattentive += not attentive
            leniency = float(behaviour.leniency(scoring, 1)[0])
            for item in store.bundle_items(rater):
                scores = _scores(item, attentive, leniency, demo, model, behaviour, rng, scoring, systems,
                                 conditions, item_effect, features, seed)
                duration = round(math.exp(rng.gauss(math.log(model.duration_mean_s), 0.5)), 2)
                ratings += store.submit_rating(rater, item.assignment_id, scores, "", duration_s=duration)
            added += 1
        return SimulationSummary(raters=added, ratings=ratings, inattentive=inattentive, full=full)
    finally:
        if not isinstance(db, RatingStore):
            store.close()


def _system_lookup(store: RatingStore) -> tuple[dict[str, str], dict[str, str]]:
    import sqlalchemy as sa

    from tidekit.rating import _schema as t

    with store.read() as conn:
        rows = conn.execute(sa.select(t.systems.c.code, t.systems.c.system, t.systems.c.condition)).all()
    return {r.code: r.system for r in rows}, {r.code: r.condition or "" for r in rows}


def _scores(
    item: ItemView, attentive: bool, leniency: float, demo: dict[str, str], model: RaterModel,
    behaviour: RaterBehaviour, rng: random.Random, scoring: np.random.Generator, systems: dict[str, str],
    conditions: dict[str, str], item_effect: dict[int, float], features: dict[int, set[str]], seed: int,
) -> dict[str, int]:
    import numpy as np


    fields = ("empathy", *FACTORS)
    if not attentive:
        return {f: rng.randint(1, behaviour.points) for f in fields}
    if item.is_attention_check:
        assert item.expected is not None
        return dict.fromkeys(fields, item.expected)
    key = item.item
    if key not in item_effect:
        item_effect[key] = float(behaviour.item_effects(np.random.default_rng([seed % 2**63, 2, key]), 1)[0])
        features[key] = {"any"} | ({"validation_first"} if validation_first(item.response) else set()) \
            | ({"emotionally_layered"} if emotionally_layered(item.response) else set())
    code = item.system_code or ""
    condition_effects: dict[str, float] = {str(k): v for k, v in model.condition_effects.items()}  # free-text lookups
    mean = (model.base + condition_effects.get(conditions.get(code, ""), 0.0)
            + model.system_effects.get(systems.get(code, ""), 0.0))
    planted = [Planted(eff.effect, float(demo.get(eff.attribute) in eff.levels),
                       float(eff.item_feature in features[key])) for eff in model.planted]
    latent = behaviour.latent(scoring, mean, rater=leniency, item=item_effect[key], planted=planted, size=1)
    factors = behaviour.factor_ratings(scoring, latent, FACTORS)
    return {"empathy": int(behaviour.to_scale(latent)[0]), **{f: int(v[0]) for f, v in factors.items()}}
