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
    "RACE_ETHNICITY", "AgeGroup", "DemographicField", "Education", "Gender", "MhSupport", "RaceEthnicity",
    "demographic_values",
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
