"""The seeded persona sampler and the clinical-consistency checker.

Each persona is drawn facet by facet in the order the constraints need (a constrained facet
after the facet that constrains it), from the target distribution or, for a constrained facet,
from the marginal-preserving conditional fitted in :mod:`tidekit.personas._spec`. Then come the
facets derived from those: exact age within the age band, secondary behaviours, the DSM-5
symptom profile (every cluster at least at its diagnostic minimum and holding every symptom a
behaviour implies), and age at / time since the trauma within the trauma's onset ages and at
least a month ago. :func:`check_persona` re-checks all of it independently of how it was drawn.

Draws use Python's ``random.Random(seed)``, so a seed gives the same personas on every platform.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Sequence

from tidekit.data import Persona
from tidekit.errors import ConfigError
from tidekit.personas._spec import PersonaConfig, PersonaSpec, resolve_spec
from tidekit.personas._tables import AGE_GROUP_FACET, age_range

__all__ = ["TYPED_FACETS", "check_persona", "facet_value", "sample_personas", "time_since_band"]

# facets that are typed fields of tidekit.data.Persona; every other facet goes in attributes
TYPED_FACETS = ("age_group", "gender", "trauma_type")
MAX_REDRAWS = 1000


class _Table:
    """Values and cumulative weights for fast seeded draws."""

    def __init__(self, dist: dict[str, float]) -> None:
        self.values = [v for v, p in dist.items() if p > 0]
        self.cdf: list[float] = []
        total = 0.0
        for v in self.values:
            total += dist[v]
            self.cdf.append(total)

    def draw(self, rng: random.Random) -> str:
        i = bisect.bisect_right(self.cdf, rng.random() * self.cdf[-1])
        return self.values[min(i, len(self.values) - 1)]


def time_since_band(months: int) -> str:
    """A readable band for the months since the trauma."""
    years = months // 12
    if years < 1:
        return "under 1 year"
    for hi, label in ((4, "1-4 years"), (9, "5-9 years"), (19, "10-19 years")):
        if years <= hi:
            return label
    return "20 years or more"


def facet_value(persona: Persona, facet: str) -> str | None:
    """The value of a categorical facet on a persona (typed field or attribute)."""
    value = getattr(persona, facet) if facet in TYPED_FACETS else persona.attributes.get(facet)
    return None if value is None else str(value)


class _Sampler:
    def __init__(self, spec: PersonaSpec, rng: random.Random) -> None:
        self.spec, self.rng = spec, rng
        self.tables = {f: _Table(spec.targets[f]) for f in spec.order}
        self.cond = {child: {a: _Table(dist) for a, dist in by_parent.items()}
                     for child, by_parent in spec.conditionals.items()}
        self.behavior_weights = spec.targets["primary_behavior"]

    def facets(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for f in self.spec.order:
            parent = self.spec.parents.get(f)
            table = self.cond[f][values[parent]] if parent is not None else self.tables[f]
            values[f] = table.draw(self.rng)
        return values

    def behaviors(self, primary: str) -> list[str]:
        b = self.spec.clinical.behaviors
        pool = {k: w for k, w in self.behavior_weights.items() if k != primary and w > 0}
        chosen = [primary]
        for _ in range(self.rng.randint(b.secondary_min, b.secondary_max)):
            if not pool:
                break
            pick = _Table(pool).draw(self.rng)
            chosen.append(pick)
            del pool[pick]
        return chosen

    def symptom_profile(self, severity: str, behaviors: Sequence[str]) -> dict[str, dict[str, object]]:
        clinical = self.spec.clinical
        levels = list(clinical.severity.levels)
        implied = {clinical.behaviors.implies_symptom[b] for b in behaviors}
        profile: dict[str, dict[str, object]] = {}
        for letter, cluster in clinical.dsm5.clusters.items():
            level = severity
            if self.rng.random() >= clinical.severity.same_level and len(levels) > 1:
                i = levels.index(severity)
                neighbours = [levels[j] for j in (i - 1, i + 1) if 0 <= j < len(levels)]
                level = self.rng.choice(neighbours)
            present = [s for s in cluster.symptoms if s in implied]
            rest = [s for s in cluster.symptoms if s not in implied]
            self.rng.shuffle(rest)
            while len(present) < cluster.minimum:
                present.append(rest.pop())
            p_extra = clinical.severity.extra_symptom_probability[level]
            present += [s for s in rest if self.rng.random() < p_extra]
            order = {s: i for i, s in enumerate(cluster.symptoms)}
            profile[letter] = {"name": cluster.name, "severity": level,
                               "symptoms": sorted(present, key=order.__getitem__)}
        return profile

    def trauma_timing(self, trauma: str, age: int) -> tuple[int, int]:
        trauma_model = self.spec.clinical.trauma
        lo, hi = trauma_model.types[trauma].onset_age
        age_at = self.rng.randint(lo, min(hi, age))
        if age_at < age:
            months = (age - age_at) * 12 + self.rng.randint(0, 11)
        else:
            months = self.rng.randint(max(trauma_model.min_months_since, 1), 11)
        return age_at, max(months, trauma_model.min_months_since)

    def persona(self, pid: str) -> Persona:
        values = self.facets()
        lo, hi = age_range(values[AGE_GROUP_FACET])
        age = self.rng.randint(lo, hi)
        behaviors = self.behaviors(values["primary_behavior"])
        age_at, months = self.trauma_timing(values["trauma_type"], age)
        attributes: dict[str, object] = {f: v for f, v in values.items() if f not in TYPED_FACETS}
        attributes.update(
            age_at_trauma=age_at,
            months_since_trauma=months,
            time_since_trauma=time_since_band(months),
            symptom_profile=self.symptom_profile(values["ptsd_severity"], behaviors),
        )
        return Persona(id=pid, age=age, age_group=values[AGE_GROUP_FACET], gender=values["gender"],
                       trauma_type=values["trauma_type"], behaviors=behaviors, attributes=attributes)


def _fingerprint(p: Persona) -> str:
    return json.dumps(p.model_dump(exclude={"id"}), sort_keys=True)


def sample_personas(config: PersonaConfig | None = None, *, n: int | None = None, seed: int | None = None,
                    spec: PersonaSpec | None = None) -> list[Persona]:
    """Draw ``n`` distinct personas (ids '1'..'n'); the same seed and config give the same list.

    ``n`` and ``seed`` override the config's. Raises ConfigError, listing every problem, when
    the configuration is invalid, before anything is drawn.
    """
    config = config or PersonaConfig()
    spec = spec or resolve_spec(config)
    n = config.n if n is None else n
    seed = config.seed if seed is None else seed
    sampler = _Sampler(spec, random.Random(seed))
    seen: set[str] = set()
    personas: list[Persona] = []
    for i in range(n):
        for _ in range(MAX_REDRAWS):
            p = sampler.persona(str(i + 1))
            key = _fingerprint(p)
            if key not in seen:
                break
        else:
            raise ConfigError(f"could not draw {n} distinct personas: after {MAX_REDRAWS} tries persona {i + 1} "
                              "still duplicated an earlier one; the facet tables allow too few combinations, "
                              "so add facets or values or ask for fewer personas")
        seen.add(key)
        personas.append(p)
    return personas


def check_persona(persona: Persona, spec: PersonaSpec) -> list[str]:
    """Every clinical-consistency violation of ``persona`` under ``spec`` (empty if none)."""
    out: list[str] = []
    clinical = spec.clinical
    values: dict[str, str | None] = {f: facet_value(persona, f) for f in spec.targets}
    for f, v in values.items():
        if v is None:
            out.append(f"facet '{f}' is missing")
        elif v not in spec.targets[f]:
            out.append(f"facet '{f}' has unknown value {v!r}")
    for rule in spec.rules:
        a, b = values.get(rule.when.facet), values.get(rule.then.facet)
        if a in rule.when.values(tuple(spec.targets[rule.when.facet])) and \
                b not in rule.then.values(tuple(spec.targets[rule.then.facet])):
            out.append(f"constraint '{rule.id}' broken: {rule.when.facet}={a} but {rule.then.facet}={b}")
    age, band = persona.age, values.get(AGE_GROUP_FACET)
    if age is None or band is None or band not in spec.targets[AGE_GROUP_FACET]:
        out.append("age or age group missing")
        return out
    lo, hi = age_range(band)
    if not lo <= age <= hi:
        out.append(f"age {age} is outside its age group {band}")
    trauma = values.get("trauma_type")
    age_at = persona.attributes.get("age_at_trauma")
    months = persona.attributes.get("months_since_trauma")
    if trauma in clinical.trauma.types and isinstance(age_at, int) and isinstance(months, int):
        t_lo, t_hi = clinical.trauma.types[trauma].onset_age
        if not t_lo <= age_at <= t_hi:
            out.append(f"age at trauma {age_at} is outside the onset ages [{t_lo}, {t_hi}] of {trauma}")
        if age_at > age:
            out.append(f"age at trauma {age_at} is above the age {age}")
        if months < max(clinical.trauma.min_months_since, 1):
            out.append(f"{months} month(s) since the trauma; PTSD needs at least one month (DSM-5 F)")
        if not (age - age_at) * 12 <= months <= (age - age_at) * 12 + 11:
            out.append(f"{months} months since the trauma does not match age {age} and age at trauma {age_at}")
    else:
        out.append("age at trauma or months since trauma missing")
    behaviors = persona.behaviors
    if not behaviors or behaviors[0] != values.get("primary_behavior"):
        out.append("the first behaviour must be the primary behaviour")
    if len(set(behaviors)) != len(behaviors):
        out.append("a behaviour is listed twice")
    profile = persona.attributes.get("symptom_profile")
    if not isinstance(profile, dict):
        out.append("symptom profile missing")
        return out
    present: set[str] = set()
    for letter, cluster in clinical.dsm5.clusters.items():
        entry = profile.get(letter)
        symptoms = entry.get("symptoms", []) if isinstance(entry, dict) else []
        unknown = [s for s in symptoms if s not in cluster.symptoms]
        if unknown:
            out.append(f"cluster {letter} lists symptoms of another cluster or unknown: {unknown}")
        if len(symptoms) < cluster.minimum:
            out.append(f"cluster {letter} has {len(symptoms)} symptom(s); DSM-5 requires {cluster.minimum}")
        present.update(symptoms)
    for b in behaviors:
        implied = clinical.behaviors.implies_symptom.get(b)
        if implied is None:
            out.append(f"unknown behaviour {b!r}")
        elif implied not in present:
            out.append(f"behaviour '{b}' implies symptom '{implied}', which the profile lacks")
    return out
