"""How well sampled personas match their targets: a goodness-of-fit test per facet.

Per categorical facet, Pearson's chi-square test of the realised counts against the target
shares (``scipy.stats.chisquare``); cells whose expected count is under 5 are pooled, the
usual validity rule for the chi-square approximation. For the exact age, a one-sample
Kolmogorov-Smirnov test against the target's continuous CDF: ages are integers drawn uniformly
within their band, so ``age + U(0, 1)`` (seeded jitter) is continuous and uniform within
``[lo, hi + 1)``, which makes the KS test exact rather than conservative. A facet passes when
its p-value is at least ``alpha`` divided by the number of tests (Bonferroni), so a correct
sampler fails the report with probability at most ``alpha``.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from tidekit.data import Persona
from tidekit.personas._sampler import check_persona, facet_value
from tidekit.personas._spec import PersonaSpec
from tidekit.personas._tables import AGE_GROUP_FACET, age_range

__all__ = ["AgeFit", "FacetFit", "FitReport", "fit_report"]

MIN_EXPECTED = 5.0


class FacetFit(BaseModel):
    """Realised versus target distribution of one categorical facet."""

    facet: str = Field(description="Facet id.")
    label: str = Field(description="Facet name.")
    source: str = Field(description="'paper' or 'chosen here'.")
    target: dict[str, float] = Field(description="Target share of each value.")
    counts: dict[str, int] = Field(description="Realised count of each value.")
    realised: dict[str, float] = Field(description="Realised share of each value.")
    test: str = Field(default="chi-square", description="The goodness-of-fit test used.")
    statistic: float | None = Field(description="Test statistic (None when there is nothing to test).")
    dof: int = Field(description="Degrees of freedom after pooling.")
    p_value: float | None = Field(description="p-value of the test.")
    pooled: list[str] = Field(default_factory=list, description="Values pooled for expected counts under 5.")
    passed: bool = Field(description="p-value at or above the Bonferroni threshold.")


class AgeFit(BaseModel):
    """Realised versus target distribution of the exact age."""

    test: str = Field(default="kolmogorov-smirnov (jittered)", description="The test used.")
    statistic: float = Field(description="KS statistic D.")
    p_value: float = Field(description="p-value.")
    mean: float = Field(description="Realised mean age.")
    target_mean: float = Field(description="Mean age the targets imply.")
    min: int = Field(description="Youngest age drawn.")
    max: int = Field(description="Oldest age drawn.")
    passed: bool = Field(description="p-value at or above the Bonferroni threshold.")


class FitReport(BaseModel):
    """Goodness of fit of a persona sample, per facet, plus descriptive figures of derived facets."""

    n: int = Field(description="Personas in the sample.")
    alpha: float = Field(description="Family-wise significance level.")
    threshold: float = Field(description="Per-test threshold: alpha / number of tests (Bonferroni).")
    facets: list[FacetFit] = Field(description="One entry per categorical facet.")
    age: AgeFit = Field(description="Exact-age test.")
    constraint_violations: int = Field(description="Personas breaking a clinical-consistency rule.")
    duplicates: int = Field(description="Personas identical to another apart from the id.")
    derived: dict[str, object] = Field(default_factory=dict, description="Descriptive figures of derived facets.")
    passed: bool = Field(description="Every test passed, no violations, no duplicates.")


def _chi_square(counts: dict[str, int], target: dict[str, float], n: int) -> tuple[float | None, int, float | None,
                                                                                    list[str]]:
    from scipy import stats

    zero_seen = [v for v, p in target.items() if p == 0 and counts.get(v, 0) > 0]
    if zero_seen:  # a value the target excludes was drawn: the fit is plainly wrong
        return float("inf"), len(target) - 1, 0.0, []
    cells = sorted(((v, p) for v, p in target.items() if p > 0), key=lambda vp: vp[1])
    pooled: list[str] = []
    while len(cells) > 1 and cells[0][1] * n < MIN_EXPECTED:
        (v1, p1), (v2, p2) = cells[0], cells[1]
        pooled += [v for v in (v1, v2) if v not in pooled and "+" not in v]
        cells = sorted([(f"{v1}+{v2}", p1 + p2), *cells[2:]], key=lambda vp: vp[1])
    if len(cells) < 2:
        return None, 0, None, pooled
    obs = [sum(counts.get(part, 0) for part in v.split("+")) for v, _ in cells]
    exp = [p * n for _, p in cells]
    scale = sum(obs) / sum(exp)  # shares may sum to 1 +- 1e-3; match totals as chisquare requires
    result = stats.chisquare(obs, [e * scale for e in exp])
    return float(result.statistic), len(cells) - 1, float(result.pvalue), pooled


def _age_cdf(bands: dict[str, float]) -> tuple[Callable[[float], float], float]:
    parts = [(age_range(b), w / sum(bands.values())) for b, w in bands.items()]

    def cdf(x: float) -> float:
        return sum(w * min(max((x - lo) / (hi + 1 - lo), 0.0), 1.0) for (lo, hi), w in parts)

    mean = sum(w * (lo + hi) / 2 for (lo, hi), w in parts)
    return cdf, mean


def fit_report(personas: Sequence[Persona], spec: PersonaSpec, alpha: float = 0.05) -> FitReport:
    """Test the realised facet distributions of ``personas`` against ``spec``'s targets."""
    import numpy as np
    from scipy import stats

    n = len(personas)
    n_tests = len(spec.targets) + 1
    threshold = alpha / n_tests
    facets = []
    for f, target in spec.targets.items():
        counts = Counter(facet_value(p, f) or "(missing)" for p in personas)
        stat, dof, pv, pooled = _chi_square(dict(counts), target, n)
        facets.append(FacetFit(
            facet=f, label=spec.labels[f], source=spec.sources[f], target=target,
            counts={v: counts.get(v, 0) for v in [*target, *sorted(set(counts) - set(target))]},
            realised={v: round(counts.get(v, 0) / max(n, 1), 4) for v in target},
            statistic=stat, dof=dof, p_value=pv, pooled=pooled,
            passed=pv is None or (pv >= threshold and "(missing)" not in counts)))
    rng = random.Random(0)
    ages = [p.age for p in personas if p.age is not None]
    cdf, target_mean = _age_cdf(spec.targets[AGE_GROUP_FACET])
    jittered = np.array([a + rng.random() for a in ages])
    ks = stats.kstest(jittered, np.vectorize(cdf))
    age = AgeFit(statistic=float(ks.statistic), p_value=float(ks.pvalue), mean=round(statistics.fmean(ages), 2),
                 target_mean=round(target_mean, 2), min=min(ages), max=max(ages),
                 passed=float(ks.pvalue) >= threshold)
    violations = sum(1 for p in personas if check_persona(p, spec))
    keys = [p.model_dump_json(exclude={"id"}) for p in personas]
    duplicates = len(keys) - len(set(keys))
    report = FitReport(n=n, alpha=alpha, threshold=threshold, facets=facets, age=age,
                       constraint_violations=violations, duplicates=duplicates, derived=_derived(personas, spec),
                       passed=all(f.passed for f in facets) and age.passed and violations == 0 and duplicates == 0)
    return report


def _derived(personas: Sequence[Persona], spec: PersonaSpec) -> dict[str, object]:
    ages_at = [p.attributes["age_at_trauma"] for p in personas if isinstance(p.attributes.get("age_at_trauma"), int)]
    bands = Counter(str(p.attributes.get("time_since_trauma")) for p in personas)
    n_behaviors = Counter(len(p.behaviors) for p in personas)
    any_behavior = Counter(b for p in personas for b in p.behaviors)
    symptoms: Counter[str] = Counter()
    for p in personas:
        profile = p.attributes.get("symptom_profile")
        if isinstance(profile, dict):
            for entry in profile.values():
                symptoms.update(entry.get("symptoms", []) if isinstance(entry, dict) else [])
    n = max(len(personas), 1)
    return {
        "age_at_trauma": {"mean": round(statistics.fmean(ages_at), 2) if ages_at else None,
                          "median": statistics.median(ages_at) if ages_at else None,
                          "under_18_share": round(sum(a < 18 for a in ages_at) / n, 4)},
        "time_since_trauma": dict(bands.most_common()),
        "behaviors_per_persona": {str(k): v for k, v in sorted(n_behaviors.items())},
        "behavior_any_share": {b: round(c / n, 4) for b, c in any_behavior.most_common()},
        "symptom_share": {s: round(c / n, 4) for s, c in symptoms.most_common()},
    }
