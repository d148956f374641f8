"""Clinically grounded PTSD client personas: facet tables as package data, and a seeded sampler.

``facets.yaml`` holds each facet's target distribution and where it comes from; ``clinical.yaml``
holds the DSM-5 symptom clusters, how behaviours map to symptoms, trauma onset ages and the
consistency constraints between facets. The sampler draws personas that honour every
constraint while keeping every facet's target marginal, and :func:`fit_report` tests the
realised distributions against the targets.

Typical use::

    from tidekit.personas import PersonaConfig, resolve_spec, sample_personas, fit_report
    config = PersonaConfig(n=500, seed=7, facets={"gender": {"male": .5, "female": .45, "non_binary": .05}})
    spec = resolve_spec(config)                 # ConfigError lists every problem, before sampling
    personas = sample_personas(config, spec=spec)
    print(fit_report(personas, spec).passed)
"""

from tidekit.personas._fit import AgeFit, FacetFit, FitReport, fit_report
from tidekit.personas._sampler import TYPED_FACETS, check_persona, facet_value, sample_personas
from tidekit.personas._spec import PersonaConfig, PersonaSpec, resolve_spec
from tidekit.personas._store import PersonaRun, read_personas, write_persona_file, write_personas
from tidekit.personas._tables import (
    ClinicalTables,
    ConstraintRule,
    FacetSpec,
    FacetTable,
    load_clinical,
    load_facet_table,
)

__all__ = [
    "TYPED_FACETS",
    "AgeFit",
    "ClinicalTables",
    "ConstraintRule",
    "FacetFit",
    "FacetSpec",
    "FacetTable",
    "FitReport",
    "PersonaConfig",
    "PersonaRun",
    "PersonaSpec",
    "check_persona",
    "facet_value",
    "fit_report",
    "load_clinical",
    "load_facet_table",
    "read_personas",
    "resolve_spec",
    "sample_personas",
    "write_persona_file",
    "write_personas",
]
