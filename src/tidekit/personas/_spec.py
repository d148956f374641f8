"""The persona configuration and its resolution into a checked sampling specification.

:class:`PersonaConfig` is what a user writes (how many, which seed, which target overrides).
:func:`resolve_spec` reads the facet and clinical tables, applies the overrides and checks
everything a sampler relies on: unknown facets or values, distributions that do not sum to 1,
rules naming unknown facets, a facet constrained from two sides, cycles, trauma onset ages no
persona can reach, and rule sets no distribution can satisfy. Every problem is reported at
once, as one ConfigError, before any persona is drawn (and so before any model call).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from tidekit._config import StrictModel
from tidekit.errors import ConfigError
from tidekit.personas._joint import fit_joint
from tidekit.personas._tables import (
    AGE_GROUP_FACET,
    ClinicalTables,
    ConstraintRule,
    FacetTable,
    age_range,
    check_distribution,
    load_clinical,
    load_facet_table,
)

__all__ = ["PersonaConfig", "PersonaSpec", "resolve_spec"]


class PersonaConfig(StrictModel):
    """How to sample personas."""

    n: int = Field(default=500, ge=1, le=1_000_000, description="Number of personas to sample.")
    seed: int = Field(default=0, description="Random seed: the same seed and config give the same personas.")
    facets: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Target overrides: facet id -> {value: share} listing all values of the facet, summing to 1.")
    facets_file: Path | None = Field(
        default=None, description="Your own facets.yaml (default: the packaged one).")
    clinical_file: Path | None = Field(
        default=None, description="Your own clinical.yaml: DSM-5 clusters, trauma onset ages, constraints.")
    from_file: Path | None = Field(
        default=None, description="Read personas from this JSONL file (one Persona a line) instead of sampling.")


@dataclass(frozen=True)
class PersonaSpec:
    """Everything the sampler needs, checked: targets, sampling order and conditionals."""

    targets: dict[str, dict[str, float]]
    labels: dict[str, str]
    sources: dict[str, str]
    notes: dict[str, str]
    order: list[str]
    parents: dict[str, str]
    rules: list[ConstraintRule]
    conditionals: dict[str, dict[str, dict[str, float]]]
    clinical: ClinicalTables
    min_age: int
    max_age: int
    overridden: list[str] = field(default_factory=list)


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _apply_overrides(table: FacetTable, overrides: dict[str, dict[str, float]],
                     problems: list[str]) -> dict[str, dict[str, float]]:
    targets = {f.id: dict(f.values) for f in table.facets}
    for facet_id, values in overrides.items():
        if facet_id not in targets:
            problems.append(f"personas.facets: unknown facet '{facet_id}'{_suggest(facet_id, list(targets))}; "
                            f"known facets: {', '.join(targets)}")
            continue
        known = targets[facet_id]
        unknown = [v for v in values if v not in known]
        missing = [v for v in known if v not in values]
        if unknown:
            problems.append(f"personas.facets.{facet_id}: unknown value(s) {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(known)} (to add values, copy facets.yaml and set "
                            "personas.facets_file)")
        if missing:
            problems.append(f"personas.facets.{facet_id}: give a share for every value; missing "
                            f"{', '.join(map(repr, missing))} (use 0 to exclude one)")
        problems.extend(check_distribution(values, f"personas.facets.{facet_id}"))
        if not unknown and not missing:
            targets[facet_id] = {v: float(values[v]) for v in known}
    return targets


def _check_clinical(targets: dict[str, dict[str, float]], clinical: ClinicalTables, problems: list[str]) -> None:
    symptoms = {s for c in clinical.dsm5.clusters.values() for s in c.symptoms}
    for behavior in targets["primary_behavior"]:
        implied = clinical.behaviors.implies_symptom.get(behavior)
        if implied is None:
            problems.append(f"clinical.behaviors.implies_symptom: behaviour '{behavior}' has no DSM-5 symptom; "
                            "add one")
        elif implied not in symptoms:
            problems.append(f"clinical.behaviors.implies_symptom.{behavior}: unknown symptom '{implied}'"
                            f"{_suggest(implied, sorted(symptoms))}")
    b = clinical.behaviors
    if b.secondary_max < b.secondary_min or b.secondary_max > len(targets["primary_behavior"]) - 1:
        problems.append("clinical.behaviors: need secondary_min <= secondary_max < number of behaviours")
    levels = set(clinical.severity.levels)
    if set(targets["ptsd_severity"]) != levels:
        problems.append(f"clinical.severity.levels {sorted(levels)} must equal the values of facet "
                        f"'ptsd_severity' {sorted(targets['ptsd_severity'])}")
    ages = [age_range(band) for band in targets[AGE_GROUP_FACET]]
    min_age = min(lo for lo, _ in ages)
    for trauma, share in targets["trauma_type"].items():
        spec = clinical.trauma.types.get(trauma)
        if spec is None:
            problems.append(f"clinical.trauma.types: trauma type '{trauma}' has no onset ages or keywords; add it")
        elif share > 0 and spec.onset_age[0] > min_age:
            problems.append(f"clinical.trauma.types.{trauma}: onset ages start at {spec.onset_age[0]}, above the "
                            f"youngest persona age {min_age}; a persona of {min_age} could not have had it. "
                            f"Lower the onset age or remove the youngest age band")


def _check_rules(targets: dict[str, dict[str, float]], rules: tuple[ConstraintRule, ...],
                 problems: list[str]) -> dict[str, str]:
    parents: dict[str, str] = {}
    for rule in rules:
        ok = True
        for side_name, side in (("when", rule.when), ("then", rule.then)):
            if side.facet not in targets:
                problems.append(f"constraint '{rule.id}': {side_name}.facet '{side.facet}' is not a facet"
                                f"{_suggest(side.facet, list(targets))}")
                ok = False
                continue
            unknown = [v for v in side.named() if v not in targets[side.facet]]
            if unknown:
                problems.append(f"constraint '{rule.id}': {side_name} names unknown value(s) "
                                f"{', '.join(map(repr, unknown))} of facet '{side.facet}'")
                ok = False
        if not ok:
            continue
        if rule.when.facet == rule.then.facet:
            problems.append(f"constraint '{rule.id}': a rule must link two different facets")
            continue
        child, parent = rule.then.facet, rule.when.facet
        if parents.setdefault(child, parent) != parent:
            problems.append(f"constraint '{rule.id}': facet '{child}' is already constrained by facet "
                            f"'{parents[child]}'; a facet may be constrained from one other facet only")
    # cycles: follow parents from each facet
    for start in parents:
        seen, node = {start}, start
        while node in parents:
            node = parents[node]
            if node in seen:
                problems.append(f"constraints form a cycle through facet '{start}'; a facet cannot "
                                "(indirectly) constrain itself")
                break
            seen.add(node)
    return parents


def _order(facet_ids: list[str], parents: dict[str, str]) -> list[str]:
    order: list[str] = []

    def visit(f: str) -> None:
        if f in order:
            return
        if f in parents:
            visit(parents[f])
        order.append(f)

    for f in facet_ids:
        visit(f)
    return order


def _fit_rules(targets: dict[str, dict[str, float]], rules: tuple[ConstraintRule, ...],
               parents: dict[str, str], problems: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    conditionals: dict[str, dict[str, dict[str, float]]] = {}
    for child, parent in parents.items():
        pair_rules = [r for r in rules if r.when.facet == parent and r.then.facet == child]
        allowed: dict[str, set[str]] = {}
        child_universe = tuple(targets[child])
        for r in pair_rules:
            ok_values = r.then.values(child_universe)
            for a in r.when.values(tuple(targets[parent])):
                allowed[a] = allowed.get(a, set(child_universe)) & ok_values
        fit = fit_joint(targets[parent], targets[child], allowed)
        if not fit.feasible:
            names = ", ".join(f"'{r.id}'" for r in pair_rules)
            detail = ""
            if len(pair_rules) == 1:
                r = pair_rules[0]
                p_when = sum(targets[parent][v] for v in r.when.values(tuple(targets[parent])))
                p_then = sum(targets[child][v] for v in r.then.values(child_universe))
                detail = (f": {parent} in {sorted(r.when.values(tuple(targets[parent])))} has target share "
                          f"{p_when:.3f} but {child} values allowed then have only {p_then:.3f}; raise the "
                          f"allowed {child} shares or lower the triggering {parent} shares")
            problems.append(f"constraint(s) {names} cannot hold with these target distributions{detail}")
            continue
        conditionals[child] = fit.conditional()
    return conditionals


def resolve_spec(config: PersonaConfig | None = None) -> PersonaSpec:
    """Load the tables, apply ``config``'s overrides and check everything; ConfigError lists all problems."""
    config = config or PersonaConfig()
    table = load_facet_table(config.facets_file)
    clinical = load_clinical(config.clinical_file)
    problems: list[str] = []
    targets = _apply_overrides(table, config.facets, problems)
    _check_clinical(targets, clinical, problems)
    parents = _check_rules(targets, clinical.constraints, problems)
    conditionals = {} if problems else _fit_rules(targets, clinical.constraints, parents, problems)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in the persona configuration:\n  " + "\n  ".join(problems))
    ages = [age_range(band) for band in targets[AGE_GROUP_FACET]]
    return PersonaSpec(
        targets=targets,
        labels={f.id: f.label for f in table.facets},
        sources={f.id: f.source for f in table.facets},
        notes={f.id: f.note for f in table.facets},
        order=_order(list(targets), parents),
        parents=parents,
        rules=list(clinical.constraints),
        conditionals=conditionals,
        clinical=clinical,
        min_age=min(lo for lo, _ in ages),
        max_age=max(hi for _, hi in ages),
        overridden=sorted(config.facets),
    )
