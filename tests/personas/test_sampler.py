"""The persona sampler: speed, zero constraint violations, fit to targets, determinism, bad configs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tidekit.data import Persona
from tidekit.errors import ConfigError
from tidekit.personas import (
    PersonaConfig,
    check_persona,
    fit_report,
    load_clinical,
    load_facet_table,
    resolve_spec,
    sample_personas,
)


@pytest.fixture(scope="module")
def spec():  # type: ignore[no-untyped-def]
    return resolve_spec(PersonaConfig())


@pytest.fixture(scope="module")
def many(spec):  # type: ignore[no-untyped-def]
    return sample_personas(n=5000, seed=11, spec=spec)


def test_packaged_tables_meet_the_brief() -> None:
    table, clinical = load_facet_table(), load_clinical()
    assert len(table.facet("trauma_type").values) >= 20
    assert len(table.facet("primary_behavior").values) >= 10
    assert "non_binary" in table.facet("gender").values
    # published figures (Thousand Voices of Trauma) are used verbatim
    assert table.facet("gender").values == {"male": 0.494, "female": 0.444, "non_binary": 0.062}
    assert table.facet("trauma_type").values["witnessing_violence"] == 0.106
    assert table.facet("primary_behavior").values["nightmares"] == 0.234
    for f in table.facets:
        assert f.note.strip() and f.source in ("paper", "chosen here")
        assert abs(sum(f.values.values()) - 1) < 1e-9, f.id
    assert set(clinical.dsm5.clusters) == {"B", "C", "D", "E"}
    assert clinical.trauma.types["childhood_sexual_abuse"].onset_age[1] < 18


def test_500_personas_are_sampled_and_numbered(spec) -> None:  # type: ignore[no-untyped-def]
    # how long it takes (goal: under 5 s) is measured by benchmarks/startup.py, not asserted here
    personas = sample_personas(PersonaConfig(n=500, seed=1))  # includes resolving the spec
    assert len(personas) == 500
    assert [p.id for p in personas[:3]] == ["1", "2", "3"]


def test_zero_constraint_violations_and_no_duplicates(spec, many) -> None:  # type: ignore[no-untyped-def]
    assert all(not check_persona(p, spec) for p in many)
    keys = {json.dumps(p.model_dump(exclude={"id"}), sort_keys=True) for p in many}
    assert len(keys) == len(many)
    by_trauma = {t: [p for p in many if p.trauma_type == t] for t in ("childhood_sexual_abuse", "combat")}
    assert all(p.attributes["age_at_trauma"] < 18 for p in by_trauma["childhood_sexual_abuse"])
    assert all(p.attributes["military_service"] != "none" for p in by_trauma["combat"])
    assert all(p.attributes["months_since_trauma"] >= 1 for p in many)


def test_checker_catches_each_kind_of_violation(spec, many) -> None:  # type: ignore[no-untyped-def]
    base = next(p for p in many if p.trauma_type == "combat")

    def broken(**changes: object) -> list[str]:
        data = base.model_dump()
        attrs = dict(data["attributes"])
        for k, v in changes.items():
            if k in data and k != "attributes":
                data[k] = v
            else:
                attrs[k] = v
        data["attributes"] = attrs
        return check_persona(Persona.model_validate(data), spec)

    assert any("combat_implies_military_history" in v for v in broken(military_service="none"))
    assert any("outside the onset ages" in v for v in broken(age_at_trauma=10))
    assert any("at least one month" in v for v in broken(months_since_trauma=0))
    assert any("outside its age group" in v for v in broken(age=17))
    profile = json.loads(json.dumps(base.attributes["symptom_profile"]))
    profile["E"]["symptoms"] = profile["E"]["symptoms"][:1]
    assert any("DSM-5 requires 2" in v for v in broken(symptom_profile=profile))
    assert any("unknown value" in v for v in broken(gender="robot"))
    assert check_persona(base, spec) == []


@pytest.mark.parametrize("n,seed", [(500, 7), (5000, 11)])
def test_realised_distributions_fit_targets(spec, many, n: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    personas = many if n == 5000 else sample_personas(n=n, seed=seed, spec=spec)
    report = fit_report(personas, spec)
    failing = [(f.facet, f.p_value) for f in report.facets if not f.passed]
    assert report.passed, (failing, report.age)
    assert abs(report.age.mean - 49.3) < 2.5 and report.age.min >= 18 and report.age.max <= 80


def test_fit_report_detects_a_skewed_sample(spec) -> None:  # type: ignore[no-untyped-def]
    skewed = sample_personas(PersonaConfig(n=2000, seed=3, facets={
        "gender": {"male": 0.7, "female": 0.25, "non_binary": 0.05}}))
    report = fit_report(skewed, spec)  # tested against the packaged targets
    gender = next(f for f in report.facets if f.facet == "gender")
    assert not gender.passed and gender.p_value is not None and gender.p_value < 1e-6
    assert not report.passed


def test_chi_square_matches_a_hand_computation(spec) -> None:  # type: ignore[no-untyped-def]
    from tidekit.personas._fit import _chi_square

    # counts 60/30/10 against 0.5/0.4/0.1 of 100: (60-50)^2/50 + (30-40)^2/40 + 0 = 2 + 2.5 = 4.5
    stat, dof, p, pooled = _chi_square({"a": 60, "b": 30, "c": 10}, {"a": 0.5, "b": 0.4, "c": 0.1}, 100)
    assert stat == pytest.approx(4.5) and dof == 2 and not pooled
    assert p == pytest.approx(0.105399, abs=1e-5)  # exp(-4.5/2) for 2 dof
    # expected 2.5 and 2.5 < 5: pooled into one cell
    _, dof, _, pooled = _chi_square({"a": 90, "b": 5, "c": 5}, {"a": 0.95, "b": 0.025, "c": 0.025}, 100)
    assert dof == 1 and sorted(pooled) == ["b", "c"]


def test_same_seed_same_personas_other_seed_differs() -> None:
    a = sample_personas(n=50, seed=5)
    assert a == sample_personas(n=50, seed=5)
    assert a != sample_personas(n=50, seed=6)


def test_overrides_change_the_realised_distribution() -> None:
    config = PersonaConfig(n=1000, seed=2, facets={"gender": {"male": 0.0, "female": 0.5, "non_binary": 0.5}})
    personas = sample_personas(config)
    assert {p.gender for p in personas} == {"female", "non_binary"}
    assert fit_report(personas, resolve_spec(config)).passed


@pytest.mark.parametrize("facets,needle", [
    ({"genderr": {"male": 1.0}}, "unknown facet 'genderr' (did you mean 'gender'?)"),
    ({"gender": {"male": 0.5, "female": 0.4, "non_binary": 0.2}}, "sum to 1.1000, not 1"),
    ({"gender": {"male": 0.5, "female": 0.5, "robot": 0.0}}, "unknown value(s) 'robot'"),
    ({"gender": {"male": 0.5, "female": 0.5}}, "missing 'non_binary'"),
])
def test_bad_overrides_are_clear_errors(facets: dict[str, dict[str, float]], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_spec(PersonaConfig(facets=facets))
    assert needle in str(err.value)


def test_impossible_constraints_are_reported_before_sampling() -> None:
    table = load_facet_table()
    trauma = dict.fromkeys(table.facet("trauma_type").values, 0.0)
    trauma.update(combat=0.5, bullying=0.5)  # half the personas need military service...
    military = {"none": 0.9, "veteran": 0.1, "active_duty": 0.0, "reserve_or_guard": 0.0}  # ...only 10% have it
    with pytest.raises(ConfigError) as err:
        resolve_spec(PersonaConfig(facets={"trauma_type": trauma, "military_service": military}))
    message = str(err.value)
    assert "combat_implies_military_history" in message and "0.500" in message and "0.100" in message


def test_bad_clinical_file_is_reported_with_every_problem(tmp_path: Path) -> None:
    import yaml

    from tidekit.personas._tables import _packaged_clinical

    data = _packaged_clinical().model_dump(mode="json", by_alias=True)
    data["trauma"]["types"]["combat"]["onset_age"] = [30, 60]  # an 18-year-old could not have it
    data["constraints"].append({"id": "loop", "when": {"facet": "military_service", "in": ["veteran"]},
                                "then": {"facet": "trauma_type", "in": ["combat"]}, "note": "x"})
    data["constraints"].append({"id": "typo", "when": {"facet": "gendr", "in": ["male"]},
                                "then": {"facet": "education", "in": ["high_school"]}, "note": "x"})
    path = tmp_path / "clinical.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        resolve_spec(PersonaConfig(clinical_file=path))
    message = str(err.value)
    assert "onset ages start at 30" in message
    assert "cycle" in message
    assert "'gendr' is not a facet" in message


def test_cli_writes_personas_and_a_fit_manifest(tmp_path: Path, run_cli: Callable[..., object]) -> None:
    out = tmp_path / "p" / "personas.jsonl"
    result = run_cli("personas", "--n", "200", "--seed", "4", "--out", out)
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200 and Persona.model_validate_json(lines[0]).id == "1"
    manifest = json.loads((out.parent / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "finished" and manifest["seed"] == 4
    fit = manifest["extra"]["fit"]
    assert {f["facet"] for f in fit["facets"]} >= {"gender", "trauma_type", "primary_behavior"}
    assert all(f["p_value"] is not None for f in fit["facets"]) and fit["constraint_violations"] == 0
    bad = run_cli("personas", "--out", tmp_path / "x.jsonl", "facets.gender.male=2")
    assert bad.code == 2 and "error:" in bad.err and "Traceback" not in bad.err  # type: ignore[attr-defined]
