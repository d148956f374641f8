"""The one vocabulary of rater demographics: what the rating app asks, the simulators draw and the
analysis reads.

Each question's answers are a ``Literal``; the tuples of values come from it with ``get_args``
(as :mod:`tidekit.scenarios._taxonomy` does for the empathy factors), so a value can be added or
renamed in one place only. Every question also offers :data:`PREFER_NOT`. Categories are chosen
here: the paper reports analyses by age, gender, race and education but does not publish its
questionnaire. The age groups and education levels are listed lowest first (the analysis reads
that order).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "AGE_GROUPS", "DEMOGRAPHICS", "DEMOGRAPHIC_FIELDS", "EDUCATION_LEVELS", "GENDERS", "MH_SUPPORT", "PREFER_NOT",
    "RACE_ETHNICITY", "TYPICAL_SHARES", "AgeGroup", "DemographicField", "Education", "Gender", "MhSupport",
    "RaceEthnicity", "check_answers", "demographic_values",
]

PREFER_NOT = "prefer_not_to_say"

DemographicField = Literal["age_group", "gender", "education", "race_ethnicity", "mh_support_experience"]
AgeGroup = Literal["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
Gender = Literal["woman", "man", "non_binary", "another"]
Education = Literal["secondary_or_less", "some_college", "bachelors", "graduate"]
RaceEthnicity = Literal["asian", "black", "hispanic_latino", "middle_eastern_north_african", "indigenous",
                        "pacific_islander", "white", "multiple", "another"]
MhSupport = Literal["none", "received", "provided", "both"]

DEMOGRAPHIC_FIELDS: tuple[DemographicField, ...] = get_args(DemographicField)
AGE_GROUPS: tuple[AgeGroup, ...] = get_args(AgeGroup)
GENDERS: tuple[Gender, ...] = get_args(Gender)
EDUCATION_LEVELS: tuple[Education, ...] = get_args(Education)
RACE_ETHNICITY: tuple[RaceEthnicity, ...] = get_args(RaceEthnicity)
MH_SUPPORT: tuple[MhSupport, ...] = get_args(MhSupport)

_QUESTIONS: dict[DemographicField, str] = {
    "age_group": "What is your age?",
    "gender": "What is your gender?",
    "education": "What is the highest level of education you have completed?",
    "race_ethnicity": "Which best describes your race or ethnicity?",
    "mh_support_experience": "Have you ever received or given mental-health support (therapy, counselling, "
                             "peer support)?",
}
_VALUES: dict[DemographicField, tuple[str, ...]] = {
    "age_group": AGE_GROUPS, "gender": GENDERS, "education": EDUCATION_LEVELS, "race_ethnicity": RACE_ETHNICITY,
    "mh_support_experience": MH_SUPPORT,
}
# the label a rater sees, where it is not the value itself
_LABELS: dict[DemographicField, dict[str, str]] = {
    "age_group": {"65+": "65 or older"},
    "gender": {"woman": "Woman", "man": "Man", "non_binary": "Non-binary", "another": "Another gender"},
    "education": {"secondary_or_less": "Secondary school (high school) or less",
                  "some_college": "Some college or vocational training", "bachelors": "Bachelor's degree",
                  "graduate": "Graduate degree (master's, doctorate)"},
    "race_ethnicity": {"asian": "Asian", "black": "Black or African", "hispanic_latino": "Hispanic or Latino/a",
                       "middle_eastern_north_african": "Middle Eastern or North African",
                       "indigenous": "Indigenous (e.g. Native American, Alaska Native, First Nations)",
                       "pacific_islander": "Native Hawaiian or Pacific Islander", "white": "White",
                       "multiple": "More than one of these", "another": "Another race or ethnicity"},
    "mh_support_experience": {"none": "Neither", "received": "I have received support",
                              "provided": "I have given support (professionally or as a peer)",
                              "both": "Both received and given"},
}

# field -> (question, [(value, label), ...]), PREFER_NOT last: the form the app renders
DEMOGRAPHICS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    field: (_QUESTIONS[field], [(v, _LABELS[field].get(v, v)) for v in _VALUES[field]]
            + [(PREFER_NOT, "Prefer not to say")])
    for field in DEMOGRAPHIC_FIELDS
}


def demographic_values(field: str, prefer_not: bool = True) -> tuple[str, ...]:
    """The answers to ``field`` (with :data:`PREFER_NOT` unless told not); KeyError names the fields."""
    if field not in _VALUES:
        raise KeyError(f"{field!r} is not a rater demographic; use one of {', '.join(DEMOGRAPHIC_FIELDS)}")
    values = _VALUES[field]
    return (*values, PREFER_NOT) if prefer_not else values


# Shares of each answer in a typical online rater panel, for simulators that want a realistic
# sample rather than a uniform one (tidekit.analysis.synthetic_ratings). Rough figures for an
# English-speaking crowd-work panel, not measured on any study: younger raters more common, a
# few percent non-binary or another gender, so small groups occur as they do in real studies.
TYPICAL_SHARES: dict[DemographicField, dict[str, float]] = {
    "age_group": {"18-24": 0.18, "25-34": 0.26, "35-44": 0.2, "45-54": 0.15, "55-64": 0.12, "65+": 0.09},
    "gender": {"woman": 0.48, "man": 0.44, "non_binary": 0.05, "another": 0.03},
    "education": {"secondary_or_less": 0.2, "some_college": 0.3, "bachelors": 0.32, "graduate": 0.18},
    "race_ethnicity": {"asian": 0.1, "black": 0.1, "hispanic_latino": 0.12, "middle_eastern_north_african": 0.03,
                       "indigenous": 0.02, "pacific_islander": 0.01, "white": 0.55, "multiple": 0.05,
                       "another": 0.02},
    "mh_support_experience": {"none": 0.45, "received": 0.35, "provided": 0.08, "both": 0.12},
}


def check_answers(field: str, answers: list[str], what: str) -> None:
    """Raise ValueError unless ``field`` is a question and every answer is one the app offers.

    Simulators call this on their configured levels, so a simulated study carries only answers a
    real rater can give and an analysis written against one runs on the other."""
    if field not in _VALUES:
        raise ValueError(f"{field!r} is not a question of the rating app; use {', '.join(DEMOGRAPHIC_FIELDS)}")
    known = demographic_values(field)
    unknown = [a for a in answers if a not in known]
    if unknown:
        raise ValueError(f"{what} {unknown} are not answers the rating app offers for {field}; "
                         f"use {', '.join(known)}")
