"""Typed loaders for the persona facet tables (``facets.yaml``) and clinical structure (``clinical.yaml``).

Both files are package data beside this module; a study can point its config at its own copies.
A file that does not match the models raises one :class:`~tidekit.errors.ConfigError` naming the
file and listing every problem. The packaged files are read once and cached.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tidekit._config import format_validation_error, read_yaml
from tidekit.errors import ConfigError

__all__ = [
    "AGE_GROUP_FACET",
    "DSM5",
    "BehaviorModel",
    "ClinicalTables",
    "Cluster",
    "ConstraintRule",
    "FacetSpec",
    "FacetTable",
    "RuleSide",
    "SeverityModel",
    "TraumaModel",
    "TraumaType",
    "age_range",
    "load_clinical",
    "load_facet_table",
]

FACETS_FILE = "facets.yaml"
CLINICAL_FILE = "clinical.yaml"
AGE_GROUP_FACET = "age_group"
SUM_TOLERANCE = 1e-3
_SLUG = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
_AGE_BAND = re.compile(r"^(\d+)-(\d+)$")

M = TypeVar("M", bound=BaseModel)


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_distribution(values: dict[str, float], what: str) -> list[str]:
    """Problems with a target distribution: negative shares, or a sum that is not 1."""
    problems = [f"{what}: share of '{k}' is negative ({v})" for k, v in values.items() if v < 0]
    total = sum(values.values())
    if not values:
        problems.append(f"{what}: no values")
    elif abs(total - 1.0) > SUM_TOLERANCE:
        problems.append(f"{what}: shares sum to {total:.4f}, not 1; rescale them so they add up to 1")
    return problems


def age_range(band: str) -> tuple[int, int]:
    """The inclusive ages of an age band written 'LO-HI' (e.g. '18-24')."""
    m = _AGE_BAND.match(band)
    if not m or int(m[1]) > int(m[2]):
        raise ValueError(f"age band {band!r} is not of the form 'LO-HI' with LO <= HI (e.g. '18-24')")
    return int(m[1]), int(m[2])


class FacetSpec(_Data):
    """One categorical persona facet and its target distribution."""

    id: str = Field(pattern=_SLUG, description="Facet id; the key in Persona.attributes (or a typed field).")
    label: str = Field(min_length=1, description="Human-readable name, used in reports and prompts.")
    source: Literal["paper", "chosen here"] = Field(
        description="'paper' for published figures (Thousand Voices of Trauma), else 'chosen here'.")
    note: str = Field(min_length=1, description="Where the values and shares come from.")
    values: dict[str, float] = Field(description="Target share of each value; shares sum to 1.")

    @model_validator(mode="after")
    def _valid(self) -> FacetSpec:
        problems = check_distribution(self.values, f"facet '{self.id}'")
        if self.id == AGE_GROUP_FACET:
            for band in self.values:
                try:
                    age_range(band)
                except ValueError as exc:
                    problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return self


class FacetTable(_Data):
    """The whole of ``facets.yaml``."""

    version: Literal[1] = Field(description="Format version of the file.")
    facets: tuple[FacetSpec, ...] = Field(min_length=1, description="The facets, each id once.")

    @model_validator(mode="after")
    def _unique(self) -> FacetTable:
        ids = [f.id for f in self.facets]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise ValueError(f"facet ids appear more than once: {', '.join(dups)}")
        required = {AGE_GROUP_FACET, "gender", "trauma_type", "primary_behavior", "ptsd_severity"}
        missing = sorted(required - set(ids))
        if missing:
            raise ValueError(f"required facets are missing: {', '.join(missing)}")
        return self

    def facet(self, facet_id: str) -> FacetSpec:
        for f in self.facets:
            if f.id == facet_id:
                return f
        raise KeyError(facet_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.facets)


class Cluster(_Data):
    """One DSM-5 PTSD symptom cluster."""

    name: str = Field(description="Cluster name, e.g. 'Intrusion'.")
    minimum: int = Field(ge=0, description="Symptoms required for the diagnosis (DSM-5).")
    symptoms: tuple[str, ...] = Field(min_length=1, description="The cluster's symptoms (slugs).")

    @model_validator(mode="after")
    def _enough(self) -> Cluster:
        if self.minimum > len(self.symptoms):
            raise ValueError(f"minimum {self.minimum} exceeds the {len(self.symptoms)} symptoms listed")
        return self


class DSM5(_Data):
    note: str = Field(description="Provenance of the cluster definitions.")
    clusters: dict[str, Cluster] = Field(min_length=1, description="Clusters by letter (B-E).")

    def cluster_of(self, symptom: str) -> str | None:
        for letter, cluster in self.clusters.items():
            if symptom in cluster.symptoms:
                return letter
        return None


class SeverityModel(_Data):
    note: str = Field(description="How severity shapes the symptom profile.")
    levels: tuple[str, ...] = Field(min_length=1, description="Severity levels, mildest first.")
    extra_symptom_probability: dict[str, float] = Field(
        description="Per level: chance that each symptom beyond the minimum is present.")
    same_level: float = Field(ge=0, le=1, description="Chance a cluster's severity equals the overall one.")

    @model_validator(mode="after")
    def _levels(self) -> SeverityModel:
        missing = [lv for lv in self.levels if lv not in self.extra_symptom_probability]
        bad = [k for k, v in self.extra_symptom_probability.items() if not 0 <= v <= 1]
        if missing or bad:
            raise ValueError(f"extra_symptom_probability: missing levels {missing}, out of [0, 1]: {bad}")
        return self


class BehaviorModel(_Data):
    note: str = Field(description="How behaviours are drawn and what they imply.")
    secondary_min: int = Field(ge=0, description="Fewest secondary behaviours.")
    secondary_max: int = Field(ge=0, description="Most secondary behaviours.")
    implies_symptom: dict[str, str] = Field(description="Behaviour -> the DSM-5 symptom it expresses.")


class TraumaType(_Data):
    onset_age: tuple[int, int] = Field(description="Inclusive range of ages at which this trauma can occur.")
    keywords: tuple[str, ...] = Field(min_length=1, description="Words a message about it may use (generous).")
    markers: tuple[str, ...] = Field(default=(), description="Phrases that name it unmistakably (strict).")

    @model_validator(mode="after")
    def _range(self) -> TraumaType:
        lo, hi = self.onset_age
        if not 0 <= lo <= hi <= 120:
            raise ValueError(f"onset_age [{lo}, {hi}] must satisfy 0 <= lo <= hi <= 120")
        return self


class TraumaModel(_Data):
    note: str = Field(description="How age at and time since trauma are drawn.")
    min_months_since: int = Field(
        ge=1, le=11, description="Fewest months since the trauma: DSM-5 criterion F needs 1; at most 11.")
    types: dict[str, TraumaType] = Field(min_length=1, description="Per trauma type: onset ages, keywords.")


class RuleSide(_Data):
    """A facet and a set of its values, given as ``in`` or as ``not_in``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    facet: str = Field(description="Facet id.")
    in_: tuple[str, ...] | None = Field(default=None, alias="in", description="Allowed values.")
    not_in: tuple[str, ...] | None = Field(default=None, description="Excluded values.")

    @model_validator(mode="after")
    def _one(self) -> RuleSide:
        if (self.in_ is None) == (self.not_in is None):
            raise ValueError(f"rule side on '{self.facet}': give exactly one of 'in' or 'not_in'")
        return self

    def values(self, universe: tuple[str, ...]) -> set[str]:
        """The values of the facet this side selects."""
        if self.in_ is not None:
            return set(self.in_)
        return set(universe) - set(self.not_in or ())

    def named(self) -> tuple[str, ...]:
        return self.in_ if self.in_ is not None else (self.not_in or ())


class ConstraintRule(_Data):
    """When facet A takes a value in ``when``, facet B must take a value in ``then``."""

    id: str = Field(pattern=_SLUG, description="Rule id, named in reports and errors.")
    when: RuleSide = Field(description="The triggering facet and values.")
    then: RuleSide = Field(description="The constrained facet and the values it must then take.")
    note: str = Field(min_length=1, description="Why the rule holds.")


class ClinicalTables(_Data):
    """The whole of ``clinical.yaml``."""

    version: Literal[1] = Field(description="Format version of the file.")
    dsm5: DSM5
    severity: SeverityModel
    behaviors: BehaviorModel
    trauma: TraumaModel
    constraints: tuple[ConstraintRule, ...] = Field(default=(), description="Consistency rules between facets.")


def _load(path: Path, model: type[M], what: str) -> M:
    data = read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(exc, str(path))
        raise ConfigError(f"{path}: {len(lines)} problem(s) in the {what}:\n  " + "\n  ".join(lines)) from None


def _packaged(name: str, model: type[M], what: str) -> M:
    with resources.as_file(resources.files("tidekit.personas") / name) as path:
        return _load(path, model, what)


@functools.lru_cache(maxsize=1)
def _packaged_facets() -> FacetTable:
    return _packaged(FACETS_FILE, FacetTable, "persona facet table")


@functools.lru_cache(maxsize=1)
def _packaged_clinical() -> ClinicalTables:
    return _packaged(CLINICAL_FILE, ClinicalTables, "persona clinical tables")


def load_facet_table(path: str | Path | None = None) -> FacetTable:
    """The persona facets and their targets; by default the packaged ``facets.yaml`` (cached)."""
    return _packaged_facets() if path is None else _load(Path(path), FacetTable, "persona facet table")


def load_clinical(path: str | Path | None = None) -> ClinicalTables:
    """DSM-5 clusters, behaviour map, trauma onset ages and constraints; packaged by default."""
    return _packaged_clinical() if path is None else _load(Path(path), ClinicalTables, "persona clinical tables")
