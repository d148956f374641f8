"""The packaged scenario taxonomy, the empathy model, their loaders, and the bundled sample."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

import tidekit.scenarios
from tidekit.errors import ConfigError, DataError
from tidekit.scenarios import (
    EMPATHY_FACTOR_IDS,
    get_scenario,
    load_empathy_factors,
    load_empathy_model,
    load_taxonomy,
)

PACKAGE_DIR = Path(tidekit.scenarios.__file__).parent
PACKAGED_SCENARIOS = PACKAGE_DIR / "scenarios.yaml"
PACKAGED_EMPATHY = PACKAGE_DIR / "empathy.yaml"
SAMPLE = PACKAGE_DIR.parent / "sample" / "tide"


def _write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- the packaged taxonomy ---------------------------------------------------------------


def test_packaged_taxonomy_has_20_scenarios_in_at_least_10_categories() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.version == 1
    assert "chosen here" in taxonomy.note.lower()
    assert len(taxonomy.scenarios) == 20
    assert len(taxonomy.categories) >= 10
    ids = [s.id for s in taxonomy.scenarios]
    assert len(set(ids)) == 20
    assert len({c.id for c in taxonomy.categories}) == len(taxonomy.categories)
    # every category is used, so none is dead weight in reports grouped by category
    assert {s.category for s in taxonomy.scenarios} == {c.id for c in taxonomy.categories}


def test_packaged_taxonomy_uses_every_factor_and_has_high_risk_scenarios() -> None:
    taxonomy = load_taxonomy()
    assert {s.empathy_factor for s in taxonomy.scenarios} == set(EMPATHY_FACTOR_IDS)
    high = [s for s in taxonomy.scenarios if s.risk_level == "high"]
    assert len(high) >= 2
    assert all(s.category == "crisis_hopelessness" for s in high)
    for scenario in taxonomy.scenarios:
        assert 2 <= len(scenario.primary_emotions) <= 4
        assert scenario.source.strip()


def test_packaged_loads_are_cached_and_path_loads_are_fresh() -> None:
    assert load_taxonomy() is load_taxonomy()
    fresh = load_taxonomy(PACKAGED_SCENARIOS)
    assert fresh is not load_taxonomy()
    assert fresh == load_taxonomy()


# --- the packaged empathy model ----------------------------------------------------------


def test_empathy_model_has_three_factors_with_five_anchors_each() -> None:
    factors = load_empathy_factors()
    assert list(factors) == list(EMPATHY_FACTOR_IDS)
    for factor_id, factor in factors.items():
        assert factor.id == factor_id
        assert 3 <= len(factor.markers) <= 4
        assert len(factor.failures) == 3
        assert sorted(factor.anchors) == [1, 2, 3, 4, 5]
    overall = load_empathy_model().overall_empathy
    assert sorted(overall.anchors) == [1, 2, 3, 4, 5]
    assert "samhsa" in load_empathy_model().source.lower()


def test_empathy_factor_lookup_names_valid_ids() -> None:
    model = load_empathy_model()
    assert model.factor("supportive_reflection").name == "Supportive reflection"
    with pytest.raises(DataError, match="emotion_recognition"):
        model.factor("empathy")


# --- lookup ------------------------------------------------------------------------------


def test_get_scenario_returns_the_scenario() -> None:
    scenario = get_scenario("survivor_guilt")
    assert scenario.category == "guilt_self_blame"
    assert scenario.empathy_factor in EMPATHY_FACTOR_IDS


def test_unknown_scenario_id_lists_valid_ids() -> None:
    with pytest.raises(DataError) as info:
        get_scenario("survivor_gilt")
    message = str(info.value)
    assert "survivor_gilt" in message
    assert "Did you mean 'survivor_guilt'" in message
    for scenario_id in load_taxonomy().scenario_ids:
        assert scenario_id in message


# --- bad files ---------------------------------------------------------------------------


def test_bad_field_gives_config_error_naming_file_and_field(tmp_path: Path) -> None:
    data = _raw(PACKAGED_SCENARIOS)
    data["scenarios"][3]["risk_level"] = "extreme"
    data["scenarios"][5]["empathy_factor"] = "kindness"
    del data["scenarios"][7]["name"]
    path = _write_yaml(tmp_path / "scenarios.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_taxonomy(path)
    message = str(info.value)
    assert str(path) in message
    # every problem is listed, each with its location
    assert "scenarios.3.risk_level" in message and "extreme" in message
    assert "scenarios.5.empathy_factor" in message
    assert "scenarios.7.name" in message
    assert "3 problem(s)" in message


def test_unknown_category_and_duplicate_id_are_reported_together(tmp_path: Path) -> None:
    data = _raw(PACKAGED_SCENARIOS)
    data["scenarios"][2]["category"] = "nightmare"
    data["scenarios"][4]["id"] = data["scenarios"][0]["id"]
    path = _write_yaml(tmp_path / "taxonomy.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_taxonomy(path)
    message = str(info.value)
    assert str(path) in message
    assert "unknown category 'nightmare'" in message
    assert f"scenario id '{data['scenarios'][0]['id']}' appears 2 times" in message


def test_unknown_key_and_bad_slug_are_rejected(tmp_path: Path) -> None:
    data = _raw(PACKAGED_SCENARIOS)
    data["scenarios"][0]["severity"] = "high"
    data["scenarios"][1]["id"] = "Not A Slug"
    path = _write_yaml(tmp_path / "scenarios.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_taxonomy(path)
    message = str(info.value)
    assert "scenarios.0.severity" in message
    assert "scenarios.1.id" in message


def test_invalid_yaml_gives_config_error_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nnote: [never closed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)
    assert "line" in str(info.value)


def test_missing_file_gives_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_taxonomy(tmp_path / "nope.yaml")


def test_bad_empathy_file_lists_missing_anchor_and_missing_factor(tmp_path: Path) -> None:
    data = _raw(PACKAGED_EMPATHY)
    del data["factors"][0]["anchors"][3]
    data["factors"][1]["anchors"][7] = "off the scale"
    path = _write_yaml(tmp_path / "empathy.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_empathy_factors(path)
    message = str(info.value)
    assert str(path) in message
    assert "factors.0.anchors" in message and "[3]" in message
    assert "factors.1.anchors" in message and "[7]" in message

    data = _raw(PACKAGED_EMPATHY)
    data["factors"] = data["factors"][:2]
    path = _write_yaml(tmp_path / "two_factors.yaml", data)
    with pytest.raises(ConfigError, match="factor 'supportive_reflection' is missing"):
        load_empathy_model(path)


def test_empathy_file_must_list_the_factors_in_the_one_order(tmp_path: Path) -> None:
    # EMPATHY_FACTOR_IDS is the one list every module imports (store columns, judge criteria);
    # the packaged file agrees with it exactly, and a reordered file is refused
    assert tuple(f.id for f in load_empathy_model().factors) == EMPATHY_FACTOR_IDS
    data = _raw(PACKAGED_EMPATHY)
    data["factors"] = data["factors"][::-1]
    path = _write_yaml(tmp_path / "reordered.yaml", data)
    with pytest.raises(ConfigError, match="must be listed in the order emotion_recognition"):
        load_empathy_model(path)


def test_factor_ids_everywhere_come_from_the_one_source() -> None:
    from tidekit.analysis._config import DEFAULT_EXTRA_RATINGS
    from tidekit.metrics._rubric import CRITERIA
    from tidekit.rating._schema import ratings
    from tidekit.rating._store import FACTORS

    assert FACTORS == DEFAULT_EXTRA_RATINGS == EMPATHY_FACTOR_IDS == CRITERIA[:3]
    # the rating store's column names are unchanged (existing databases keep working)
    assert [c.name for c in ratings.c if c.name in EMPATHY_FACTOR_IDS] == [
        "emotion_recognition", "distress_normalization", "supportive_reflection"]


# --- the bundled sample (read with the json module, independent of tidekit's reader) -----


def _sample_files(kind: str) -> list[Path]:
    return sorted((SAMPLE / kind).glob("*.json"))


def test_sample_has_five_personas_with_metadata_and_conversations() -> None:
    metadata = _sample_files("metadata")
    conversations = _sample_files("conversations")
    assert [p.name for p in metadata] == [f"{n}_metadata.json" for n in range(1, 6)]
    assert [p.name for p in conversations] == [f"{n}_conversations.json" for n in range(1, 6)]
    genders = set()
    for path in metadata:
        meta = json.loads(path.read_text(encoding="utf-8"))
        assert meta["persona_id"] == path.name.split("_")[0]
        assert meta["synthetic"] is True
        assert 18 <= meta["age"] <= 80
        genders.add(meta["gender"])
    assert "non-binary" in genders


def test_each_sample_persona_has_each_scenario_exactly_once() -> None:
    taxonomy = load_taxonomy()
    names = {s.id: s.name for s in taxonomy.scenarios}
    high_risk = {s.id for s in taxonomy.scenarios if s.risk_level == "high"}
    texts: list[str] = []
    for path in _sample_files("conversations"):
        persona_id = path.name.split("_")[0]
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["persona_id"] == persona_id
        items = data["conversations"]
        counts = Counter(item["scenario_id"] for item in items)
        unknown = set(counts) - set(names)
        assert not unknown, f"{path.name}: scenario ids not in the taxonomy: {unknown}"
        assert counts == Counter(taxonomy.scenario_ids), f"{path.name}: not one of each scenario"
        for i, item in enumerate(items, 1):
            assert item["conversation_id"] == f"{persona_id}-{i:02d}"
            assert item["scenario"] == names[item["scenario_id"]]
            assert 40 <= len(item["person"].split()) <= 120
            assert 60 <= len(item["chatbot"].split()) <= 160
            if item["scenario_id"] in high_risk:
                assert "988" in item["chatbot"], item["conversation_id"]
            texts += [item["person"], item["chatbot"]]
    assert len(texts) == 200
    assert len(set(texts)) == len(texts), "sample texts must not repeat"
