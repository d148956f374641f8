"""Typed loaders for the emotional scenario taxonomy and the three-factor empathy model.

Both live as package data beside this module: ``scenarios.yaml`` (13 categories, 20 scenarios)
and ``empathy.yaml`` (emotion recognition, distress normalization, supportive reflection, plus
overall empathy, each with 1-5 anchors). Their content is chosen for tidekit; the TIDE paper
names the three factors and says there are 20 scenarios but publishes neither in detail.

A file that does not match the models raises one :class:`~tidekit.errors.ConfigError` naming
the file and listing every problem; the packaged files are read once and cached. Checks that
span entries (unique ids, known categories) run once every field is valid, as pydantic does, so
a file with both kinds of problem reports its field problems first.
"""

from __future__ import annotations

import difflib
import functools
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from tidekit._config import format_validation_error, read_yaml
from tidekit.errors import ConfigError, DataError

__all__ = [
    "EMPATHY_FACTOR_IDS",
    "RISK_LEVELS",
    "EmpathyFactor",
    "EmpathyFactorId",
    "EmpathyModel",
    "OverallEmpathy",
    "RiskLevel",
    "Scenario",
    "ScenarioCategory",
    "Taxonomy",
    "get_scenario",
    "load_empathy_factors",
    "load_empathy_model",
    "load_taxonomy",
]

# The one list of empathy-factor ids in tidekit, in the paper's order: the rating store's
# columns, the judge's criteria, the analysis defaults and the simulators all import it.
# ``empathy.yaml`` must list exactly these, in this order (checked when it is loaded, and by
# tests/scenarios), so the typed ids and the packaged data cannot drift apart.
EmpathyFactorId = Literal["emotion_recognition", "distress_normalization", "supportive_reflection"]
EMPATHY_FACTOR_IDS: tuple[str, ...] = get_args(EmpathyFactorId)

RiskLevel = Literal["low", "moderate", "high"]
RISK_LEVELS: tuple[str, ...] = get_args(RiskLevel)

SCENARIOS_FILE = "scenarios.yaml"
EMPATHY_FILE = "empathy.yaml"

# snake_case slug: lower-case words joined by single underscores
_SLUG = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
_LEVELS = range(1, 6)
_REQUIRED_LEVELS = (1, 3, 5)

M = TypeVar("M", bound=BaseModel)


class _DataModel(BaseModel):
    # frozen because the packaged files are cached and shared by every caller
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_anchors(anchors: dict[int, str]) -> dict[int, str]:
    outside = sorted(level for level in anchors if level not in _LEVELS)
    if outside:
        raise ValueError(f"anchor levels must be 1-5, got {outside}")
    missing = [level for level in _REQUIRED_LEVELS if level not in anchors]
    if missing:
        raise ValueError(f"anchors for levels {missing} are missing (1, 3 and 5 are required)")
    if any(not text.strip() for text in anchors.values()):
        raise ValueError("anchor texts must not be empty")
    return dict(sorted(anchors.items()))


Anchors = Annotated[dict[int, str], AfterValidator(_check_anchors)]


class EmpathyFactor(_DataModel):
    """One factor of the three-factor empathy model, written to be quoted in a prompt."""

    id: EmpathyFactorId = Field(
        description="Stable identifier used in configs, scores and prompts."
    )
    name: str = Field(min_length=1, description="Human-readable name, e.g. 'Emotion recognition'.")
    definition: str = Field(
        min_length=1, description="Two or three sentences saying what the factor is."
    )
    markers: tuple[str, ...] = Field(
        min_length=1,
        description="What a reply that does this well contains, one behaviour per item.",
    )
    failures: tuple[str, ...] = Field(
        min_length=1, description="Common ways a reply fails on this factor, one per item."
    )
    anchors: Anchors = Field(
        description="Rating anchors by level on the 1-5 scale; levels 1, 3 and 5 are required."
    )


class OverallEmpathy(_DataModel):
    """The overall-empathy rating that sits beside the three factors."""

    name: str = Field(min_length=1, description="Human-readable name, e.g. 'Overall empathy'.")
    definition: str = Field(
        min_length=1, description="What an overall rating judges, including safety."
    )
    anchors: Anchors = Field(
        description="Rating anchors by level on the 1-5 scale; levels 1, 3 and 5 are required."
    )


class EmpathyModel(_DataModel):
    """The whole of ``empathy.yaml``: the three factors and overall empathy."""

    version: Literal[1] = Field(description="Format version of the file; 1 is the only one so far.")
    source: str = Field(min_length=1, description="Where the wording comes from and who chose it.")
    scale: str = Field(min_length=1, description="How the 1-5 ratings are to be read.")
    factors: tuple[EmpathyFactor, ...] = Field(
        description="The three factors, each exactly once, in the paper's order."
    )
    overall_empathy: OverallEmpathy = Field(description="Anchors for one overall rating.")

    @model_validator(mode="after")
    def _each_factor_once(self) -> EmpathyModel:
        counts = Counter(factor.id for factor in self.factors)
        problems = [f"factor '{fid}' appears {n} times" for fid, n in counts.items() if n > 1]
        problems += [
            f"factor '{fid}' is missing" for fid in EMPATHY_FACTOR_IDS if fid not in counts
        ]
        order = tuple(factor.id for factor in self.factors)
        if not problems and order != EMPATHY_FACTOR_IDS:
            problems.append(f"factors must be listed in the order {', '.join(EMPATHY_FACTOR_IDS)}; "
                            f"got {', '.join(order)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def factor(self, factor_id: str) -> EmpathyFactor:
        """The factor with this id; DataError lists the valid ids when it is unknown."""
        for factor in self.factors:
            if factor.id == factor_id:
                return factor
        raise DataError(
            f"unknown empathy factor {factor_id!r}; valid ids: {', '.join(EMPATHY_FACTOR_IDS)}"
        )


class ScenarioCategory(_DataModel):
    """A group of related emotional scenarios (e.g. intrusive memories and flashbacks)."""

    id: str = Field(pattern=_SLUG, description="Stable snake_case identifier.")
    name: str = Field(min_length=1, description="Human-readable name.")
    description: str = Field(min_length=1, description="What the scenarios in this category share.")


class Scenario(_DataModel):
    """One emotional scenario: the situation a client brings to a conversation."""

    id: str = Field(
        pattern=_SLUG, description="Stable snake_case identifier, unique in the taxonomy."
    )
    category: str = Field(description="Id of the category it belongs to.")
    name: str = Field(min_length=1, description="Short human-readable name.")
    description: str = Field(
        min_length=1, description="One or two sentences: the situation the client brings."
    )
    primary_emotions: tuple[str, ...] = Field(
        min_length=2,
        max_length=4,
        description="The two to four emotions most present for the client.",
    )
    empathy_factor: EmpathyFactorId = Field(
        description="The empathy factor this scenario demands most of a reply."
    )
    risk_level: RiskLevel = Field(
        description="low, moderate or high; high means a reply must ask about safety and give "
        "crisis resources."
    )
    source: str = Field(min_length=1, description="Where the scenario comes from and who chose it.")


class Taxonomy(_DataModel):
    """The whole of ``scenarios.yaml``: categories and the scenarios in them."""

    version: Literal[1] = Field(description="Format version of the file; 1 is the only one so far.")
    note: str = Field(
        min_length=1, description="Provenance: chosen for tidekit, not from the paper."
    )
    categories: tuple[ScenarioCategory, ...] = Field(
        min_length=1, description="The scenario categories, each with a unique id."
    )
    scenarios: tuple[Scenario, ...] = Field(
        min_length=1, description="The scenarios, each with a unique id and a known category."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Taxonomy:
        problems = [
            f"category id '{cid}' appears {n} times"
            for cid, n in Counter(c.id for c in self.categories).items()
            if n > 1
        ]
        problems += [
            f"scenario id '{sid}' appears {n} times"
            for sid, n in Counter(s.id for s in self.scenarios).items()
            if n > 1
        ]
        known = {c.id for c in self.categories}
        problems += [
            f"scenarios.{i}.category: scenario '{s.id}' names unknown category '{s.category}' "
            f"(known: {', '.join(sorted(known))})"
            for i, s in enumerate(self.scenarios)
            if s.category not in known
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def scenario_ids(self) -> tuple[str, ...]:
        """Scenario ids in file order."""
        return tuple(s.id for s in self.scenarios)

    def in_category(self, category_id: str) -> tuple[Scenario, ...]:
        """The scenarios of one category, in file order (empty for an unknown category)."""
        return tuple(s for s in self.scenarios if s.category == category_id)


def _load(path: Path, model: type[M], what: str) -> M:
    data = read_yaml(path)  # ConfigError naming the file, line and column on bad YAML
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(exc, str(path))
        raise ConfigError(
            f"{path}: {len(lines)} problem(s) in the {what}:\n  " + "\n  ".join(lines)
        ) from None


def _load_packaged(name: str, model: type[M], what: str) -> M:
    with resources.as_file(resources.files("tidekit.scenarios") / name) as path:
        return _load(path, model, what)


@functools.lru_cache(maxsize=1)
def _packaged_taxonomy() -> Taxonomy:
    return _load_packaged(SCENARIOS_FILE, Taxonomy, "scenario taxonomy")


@functools.lru_cache(maxsize=1)
def _packaged_empathy_model() -> EmpathyModel:
    return _load_packaged(EMPATHY_FILE, EmpathyModel, "empathy model")


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load a scenario taxonomy; by default tidekit's packaged ``scenarios.yaml`` (cached).

    Raises ConfigError naming the file and listing every problem when it is invalid.
    """
    if path is None:
        return _packaged_taxonomy()
    return _load(Path(path), Taxonomy, "scenario taxonomy")


def load_empathy_model(path: str | Path | None = None) -> EmpathyModel:
    """Load the empathy model; by default tidekit's packaged ``empathy.yaml`` (cached).

    Raises ConfigError naming the file and listing every problem when it is invalid.
    """
    if path is None:
        return _packaged_empathy_model()
    return _load(Path(path), EmpathyModel, "empathy model")


def load_empathy_factors(path: str | Path | None = None) -> dict[str, EmpathyFactor]:
    """The three empathy factors by id, in the paper's order.

    The overall-empathy anchors are on ``load_empathy_model(path).overall_empathy``.
    """
    return {factor.id: factor for factor in load_empathy_model(path).factors}


def get_scenario(scenario_id: str, taxonomy: Taxonomy | None = None) -> Scenario:
    """The scenario with this id (in the packaged taxonomy unless one is given).

    Raises DataError listing the valid ids when the id is unknown.
    """
    taxonomy = taxonomy or load_taxonomy()
    for scenario in taxonomy.scenarios:
        if scenario.id == scenario_id:
            return scenario
    close = difflib.get_close_matches(scenario_id, taxonomy.scenario_ids, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise DataError(
        f"unknown scenario id {scenario_id!r}.{hint} Valid ids: {', '.join(taxonomy.scenario_ids)}"
    )
