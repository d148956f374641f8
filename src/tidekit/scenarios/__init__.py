"""The emotional scenario taxonomy and the three-factor empathy model, as package data.

``scenarios.yaml`` holds 13 categories and 20 emotional scenarios (one conversation per persona
each); ``empathy.yaml`` holds the three factors (emotion recognition, distress normalization,
supportive reflection) and overall empathy, with 1-5 anchors shared by generation prompts and
the LLM judge. The content is chosen for tidekit: the TIDE paper names the factors and the count
of scenarios but publishes neither in detail.

Typical use::

    from tidekit.scenarios import get_scenario, load_empathy_model, load_taxonomy
    taxonomy = load_taxonomy()                      # the packaged file, cached
    scenario = get_scenario("survivor_guilt")       # DataError lists valid ids if unknown
    factor = load_empathy_model().factor(scenario.empathy_factor)
"""

from tidekit.scenarios._taxonomy import (
    EMPATHY_FACTOR_IDS,
    RISK_LEVELS,
    EmpathyFactor,
    EmpathyFactorId,
    EmpathyModel,
    OverallEmpathy,
    RiskLevel,
    Scenario,
    ScenarioCategory,
    Taxonomy,
    get_scenario,
    load_empathy_factors,
    load_empathy_model,
    load_taxonomy,
)

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
