"""One vocabulary of rater demographics (tidekit.rating._demographics): the app asks it, the
simulators draw from it, the docs list it (issue #32: the app asked woman/non_binary/18-24 while
a simulator drew female/non-binary/18-34, categories no rater can choose)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tidekit.rating import (
    AGE_GROUPS,
    DEMOGRAPHIC_FIELDS,
    DEMOGRAPHICS,
    GENDERS,
    PREFER_NOT,
    PlantedEffect,
    RaterModel,
    RatingServeConfig,
    RatingStore,
    create_app,
    demographic_values,
    rating_frame,
    simulate_ratings,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_vocabulary_is_one_literal_per_question() -> None:
    assert tuple(DEMOGRAPHICS) == DEMOGRAPHIC_FIELDS
    assert GENDERS == ("woman", "man", "non_binary", "another")
    assert AGE_GROUPS[0] == "18-24" and AGE_GROUPS[-1] == "65+"  # lowest first: the analysis reads the order
    for field, (_, options) in DEMOGRAPHICS.items():
        assert tuple(v for v, _ in options) == demographic_values(field)
        assert options[-1] == (PREFER_NOT, "Prefer not to say")
    with pytest.raises(KeyError, match="age_group"):
        demographic_values("age")


def test_the_form_offers_exactly_the_vocabulary(db_url: str, make_study: Callable[..., tuple[str, str]]) -> None:
    from fastapi.testclient import TestClient

    db, _ = make_study(db_url)
    store = RatingStore.open(db)
    try:
        client = TestClient(create_app(store, RatingServeConfig()), follow_redirects=False)
        page = client.get("/")
        csrf = re.search(r'name="csrf" value="([^"]*)"', page.text).group(1)  # type: ignore[union-attr]
        client.post("/consent", data={"csrf": csrf, "decision": "agree", "confirm": "yes"})
        form = client.get("/demographics").text
    finally:
        store.close()
    for field in DEMOGRAPHIC_FIELDS:
        offered = re.findall(rf'name="{field}"[^>]*value="([^"]*)"', form)
        assert tuple(offered) == demographic_values(field), field


def test_simulated_raters_answer_only_what_a_rater_can_choose(
        tmp_path: Path, make_study: Callable[..., tuple[str, str]]) -> None:
    db, _ = make_study(str(tmp_path / "sim.db"))
    store = RatingStore.open(db)
    try:
        simulate_ratings(store, seed=2)
        frame = rating_frame(store)
    finally:
        store.close()
    assert len(frame)
    for field in DEMOGRAPHIC_FIELDS:
        assert set(frame[field]) <= set(demographic_values(field)), field


@pytest.mark.parametrize("bad", [
    {"planted": [{"attribute": "gender", "levels": ["female"], "effect": 0.5}]},
    {"planted": [{"attribute": "age_group", "levels": ["55+"], "effect": 0.5}]},
    {"demographics": {"gender": {"female": 0.5, "male": 0.5}}},
    {"demographics": {"age_group": {"18-34": 1.0}}},
    {"demographics": {"sex": {"woman": 1.0}}},
])
def test_the_rating_simulator_refuses_answers_no_rater_can_give(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="rating app"):
        RaterModel.model_validate(bad)
    if "planted" in bad:
        with pytest.raises(ValidationError):
            PlantedEffect.model_validate(bad["planted"][0])


def test_docs_list_every_answer() -> None:
    text = (ROOT / "docs" / "rating.md").read_text(encoding="utf-8")
    for field in DEMOGRAPHIC_FIELDS:
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(f"| `{field}` |")), None)
        assert line is not None, f"docs/rating.md has no row for {field}"
        assert re.findall(r"`([^`]+)`", line)[1:] == list(demographic_values(field)), field


def test_the_analysis_simulator_draws_the_same_vocabulary() -> None:
    from tidekit.analysis._simulate import synthetic_ratings

    frame = synthetic_ratings(raters=2000, conversations=4, ratings_per_rater=2, missing_attribute_rate=0.05, seed=1)
    for field in DEMOGRAPHIC_FIELDS:
        assert field in frame, field
        # every answer the app offers, prefer_not_to_say included, and nothing else
        assert set(frame[field].dropna()) == set(demographic_values(field)), field


def test_the_analysis_simulator_refuses_answers_no_rater_can_give() -> None:
    from tidekit.analysis._simulate import SyntheticSpec, synthetic_ratings

    for bad in ({"gender": {"female": 0.5, "male": 0.5}}, {"age_group": {"18-34": 1.0}}, {"sex": {"woman": 1.0}}):
        with pytest.raises(ValidationError, match="rating app"):
            SyntheticSpec(demographics=bad)
    with pytest.raises(ValidationError, match="positive sum"):
        SyntheticSpec(demographics={"gender": {"woman": 0.0}})
    only = synthetic_ratings(raters=20, conversations=4, ratings_per_rater=4, missing_attribute_rate=0.0, seed=3,
                             demographics={"gender": {"woman": 1, "non_binary": 1}})
    assert set(only["gender"]) == {"woman", "non_binary"}


def test_the_analysis_simulator_plants_gender_on_the_apps_woman() -> None:
    from tidekit.analysis._simulate import synthetic_ratings

    kw: dict[str, Any] = {"raters": 200, "conversations": 10, "ratings_per_rater": 10, "attention_checks": 0,
                          "missing_attribute_rate": 0.0, "seed": 4}
    flat, planted = synthetic_ratings(**kw), synthetic_ratings(**kw, gender_main=2.0)
    assert list(flat["gender"]) == list(planted["gender"])  # same raters, only the effect differs
    gain = planted["empathy"].astype(float) - flat["empathy"].astype(float)
    by_gender = gain.groupby(planted["gender"]).mean()
    assert by_gender["woman"] > 1.5 and all(abs(by_gender[g]) < 0.2 for g in by_gender.index if g != "woman"), \
        by_gender
