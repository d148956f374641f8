"""The build configuration, and its checks before any model call.

:class:`BuildConfig` is one YAML file (see ``configs/tide-500x20.yaml``). :func:`plan_build`
resolves it into a :class:`BuildPlan`: the personas (sampled or read), the scenarios each one
gets, and every check that can fail without a model (persona facets and constraints, unknown
scenario ids, output folder), so a bad config fails in a second rather than after hours.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tidekit._config import StrictModel
from tidekit.backends import BackendConfig, GenerationParams
from tidekit.builder._gates import GatesConfig
from tidekit.data import FORMATS, Format, Persona
from tidekit.errors import ConfigError
from tidekit.personas import (
    PersonaConfig,
    PersonaSpec,
    read_personas,
    resolve_spec,
    sample_personas,
)
from tidekit.scenarios import Scenario, Taxonomy, load_taxonomy

__all__ = ["BuildConfig", "BuildPlan", "RegenerationConfig", "ScenarioSelection", "plan_build"]


class ScenarioSelection(StrictModel):
    """Which scenarios each persona gets."""

    ids: list[str] | None = Field(default=None, description="Scenario ids to use; default: every scenario "
                                                            "in the taxonomy (20 in the packaged one).")
    per_persona: int | None = Field(default=None, ge=1, description="Scenarios per persona; default: all selected. "
                                    "Fewer gives each persona a seeded, balanced subset.")
    taxonomy_file: Path | None = Field(default=None, description="Your own scenarios.yaml; default: the packaged one.")


class RegenerationConfig(StrictModel):
    """What happens when a gate rejects a generated turn."""

    max_regenerations: int = Field(default=2, ge=0, le=20,
                                   description="k: a rejected turn is regenerated with a new seed up to k times.")
    temperature: float = Field(default=0.8, gt=0, le=2.0, description="Temperature of regenerations when the "
                               "first attempt's is lower (a new seed changes nothing at temperature 0).")
    on_exhausted: Literal["drop", "keep_flagged"] = Field(
        default="drop", description="After k regenerations still fail: 'drop' the conversation, or "
                                    "'keep_flagged': keep the best attempt, flagged in its provenance.")
    crisis_resources: Literal["regenerate", "append"] = Field(
        default="regenerate", description="A supporter reply to a risky message that fails only for lacking "
        "crisis resources: 'regenerate' it like any rejection, or 'append' tidekit's fixed crisis paragraph "
        "(the text `tidekit serve --safety` appends) and keep it, marked in the conversation's provenance "
        "(`crisis_resources_appended`) and counted in the card. For teachers that rarely name resources.")


def _client_default() -> GenerationParams:
    return GenerationParams(max_new_tokens=160, temperature=0.8, top_p=0.95)


def _supporter_default() -> GenerationParams:
    return GenerationParams(max_new_tokens=256, temperature=0.7, top_p=0.95)


class BuildConfig(StrictModel):
    """Everything ``tidekit build`` needs: personas, scenarios, teacher, gates, outputs."""

    out: Path = Field(default=Path("runs/build"), description="Output folder.")
    name: str = Field(default="tidekit-synthetic-tide", description="Dataset name, used in the card.")
    seed: int = Field(default=0, description="Seed of generation (per-request seeds derive from it).")
    personas: PersonaConfig = Field(default_factory=PersonaConfig, description="Persona sampling (or a file).")
    scenarios: ScenarioSelection = Field(default_factory=ScenarioSelection, description="Scenario selection.")
    exchanges: int = Field(default=1, ge=1, le=10, description="Client/supporter exchanges per conversation; "
                           "1 = TIDE's two turns (one client message, one reference reply).")
    teacher: BackendConfig = Field(default_factory=BackendConfig, description="The model that writes both turns.")
    client: GenerationParams = Field(default_factory=_client_default, description="Decoding of client turns.")
    supporter: GenerationParams = Field(default_factory=_supporter_default,
                                        description="Decoding of supporter (reference) turns.")
    regeneration: RegenerationConfig = Field(default_factory=RegenerationConfig,
                                             description="Regeneration after a gate rejects a turn.")
    gates: GatesConfig = Field(default_factory=GatesConfig, description="Quality gates and thresholds.")
    formats: list[Format] = Field(default_factory=lambda: list(FORMATS),
                                  description="Layouts to write: tide, jsonl, parquet (each in its own folder).")
    cache: Path | None = Field(default=None, description="SQLite cache of model calls; default OUT/cache.sqlite. "
                               "A rerun recomputes nothing cached, so a killed build resumes.")
    license: str = Field(default="CC-BY-NC-4.0", description="Licence stated in the dataset card (TIDE's is "
                         "CC BY-NC 4.0); check your teacher model's terms.")
    review_sheet: bool = Field(default=True, description="Write review.csv for a clinician.")

    @model_validator(mode="after")
    def _formats(self) -> BuildConfig:
        if not self.formats:
            raise ValueError("formats: give at least one of tide, jsonl, parquet")
        return self

    @property
    def cache_path(self) -> Path:
        return self.cache or self.out / "cache.sqlite"


@dataclass
class BuildPlan:
    """A checked build: who, which scenarios, in what order."""

    config: BuildConfig
    personas: list[Persona]
    persona_spec: PersonaSpec | None
    taxonomy: Taxonomy
    assignments: list[tuple[Persona, list[Scenario]]]

    @property
    def conversations(self) -> int:
        return sum(len(s) for _, s in self.assignments)

    @property
    def turns(self) -> int:
        return self.conversations * 2 * self.config.exchanges


def _assign(personas: list[Persona], scenarios: list[Scenario], per_persona: int,
            seed: int) -> list[tuple[Persona, list[Scenario]]]:
    if per_persona >= len(scenarios):
        return [(p, list(scenarios)) for p in personas]
    order = list(scenarios)
    random.Random(seed).shuffle(order)
    # a rotation over the shuffled list: every scenario is used equally often (+-1)
    out = []
    for i, p in enumerate(personas):
        chosen = [order[(i * per_persona + r) % len(order)] for r in range(per_persona)]
        out.append((p, sorted(chosen, key=scenarios.index)))
    return out


def plan_build(config: BuildConfig) -> BuildPlan:
    """Check ``config`` and draw the personas; ConfigError lists every problem, before any model call."""
    problems: list[str] = []
    spec: PersonaSpec | None = None
    personas: list[Persona] = []
    try:
        taxonomy = load_taxonomy(config.scenarios.taxonomy_file)
    except ConfigError as exc:
        raise ConfigError(f"scenarios.taxonomy_file: {exc}") from None
    known = list(taxonomy.scenario_ids)
    selected_ids = config.scenarios.ids if config.scenarios.ids is not None else known
    unknown = [s for s in selected_ids if s not in known]
    if unknown:
        problems.append(f"scenarios.ids: unknown scenario id(s) {', '.join(map(repr, unknown))}; "
                        f"known: {', '.join(known)}")
    dups = sorted({s for s in selected_ids if selected_ids.count(s) > 1})
    if dups:
        problems.append(f"scenarios.ids: listed more than once: {', '.join(dups)}")
    if not selected_ids:
        problems.append("scenarios.ids: empty; give at least one scenario id")
    per = config.scenarios.per_persona
    if per is not None and per > len(set(selected_ids)):
        problems.append(f"scenarios.per_persona is {per} but only {len(set(selected_ids))} scenarios are "
                        "selected; each persona's scenarios must be distinct")
    lo = config.gates.client_words[0]
    if config.client.max_new_tokens < lo:
        problems.append(f"client.max_new_tokens ({config.client.max_new_tokens}) cannot reach the "
                        f"{lo}-word minimum of gates.client_words")
    lo = config.gates.supporter_words[0]
    if config.supporter.max_new_tokens < lo:
        problems.append(f"supporter.max_new_tokens ({config.supporter.max_new_tokens}) cannot reach the "
                        f"{lo}-word minimum of gates.supporter_words")
    if config.out.exists() and not config.out.is_dir():
        problems.append(f"out: {config.out} is a file; give a folder")
    try:
        if config.personas.from_file is not None:
            personas = read_personas(config.personas.from_file)
        else:
            spec = resolve_spec(config.personas)
    except ConfigError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in the build configuration:\n  " + "\n  ".join(problems))
    if spec is not None:
        personas = sample_personas(config.personas, spec=spec)
    scenarios = [s for s in taxonomy.scenarios if s.id in set(selected_ids)]
    scenarios.sort(key=lambda s: selected_ids.index(s.id))
    assignments = _assign(personas, scenarios, per or len(scenarios), config.seed)
    return BuildPlan(config=config, personas=personas, persona_spec=spec, taxonomy=taxonomy,
                     assignments=assignments)
