"""Stages that declare themselves: a toy stage joins a study with one module and one spec line and
runs in a mock study; the spec-built stages keep the keys the hand-written runner gave them, so a
run finished before the specs is skipped after them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from study_toy_stage import WORDCOUNT_STAGE, WordCountFacts
from test_mock_study import _study

from tidekit.study import STAGES, StudyConfig, build_stages, plan_study, run_study
from tidekit.study._graph import stage_keys

ROOT = Path(__file__).resolve().parents[2]

# The stage keys of the runner before stages were specs (commit 9e9224f, build_stages by hand), for the
# mock study and for a study with every optional stage. A change here reruns finished studies.
PINNED = {
    "mock": {
        "dataset": "87a603f457c101ae", "split": "0ed87a4b50879779",
        "generate:mock-echo:zero_shot": "8c0cf0862002f87d", "generate:mock-seeded:zero_shot": "33a7f3c4d33435ba",
        "score": "c2258292a08fab2d", "rating": "ba50b08f95afaf70", "analysis": "60cc6916334c2746",
        "report": "43183f8809251a58",
    },
    "every stage": {
        "dataset": "87a603f457c101ae", "split": "0ed87a4b50879779",
        "finetune:smollm2-135m": "6bdb3fc5a037dc2d", "finetune:smollm2-360m": "b69e36890128ccb8",
        "generate:smollm2-135m:zero_shot": "7a48bde55b09a6bf", "generate:smollm2-135m:fine_tuned": "6a1b24fc44987771",
        "generate:smollm2-360m:zero_shot": "946a4faf077e96f0", "generate:smollm2-360m:fine_tuned": "d75ccd489eb0449a",
        "score": "09b4e37943a4f47c", "ceiling": "be77f83c5aaa1ef5", "judge_validation": "3a55d17b739d1e30",
        "rating": "54c7940160aea643", "analysis": "47fc645566615818", "report": "14d9fcb8a64e7100",
    },
}


def _every_stage(study: dict[str, Any]) -> dict[str, Any]:
    every = copy.deepcopy(study)
    every["systems"] = [{"model": m, "conditions": ["zero_shot", "fine_tuned"], "backend": {"kind": "hf"}}
                        for m in ("smollm2-135m", "smollm2-360m")]
    every["judge_validation"] = {"labels": "tests/metrics/data/judge_labels.csv", "human": ["total"]}
    return every


def test_spec_built_stages_keep_the_keys_of_the_hand_written_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the pinned keys hold relative paths (the run folder, the labels file)
    study = _study(Path("runs/pinned"))
    for name, data in (("mock", study), ("every stage", _every_stage(study))):
        keys = stage_keys(build_stages(StudyConfig.model_validate(data), progress=False))
        changed = {s: (PINNED[name].get(s), k) for s, k in keys.items() if PINNED[name].get(s) != k}
        assert not changed and list(keys) == list(PINNED[name]), (
            f"{name}: stage keys (pinned, now) changed, so finished runs would rerun these stages: {changed}")


def test_a_toy_stage_added_by_one_module_and_one_spec_line_runs_in_a_mock_study(tmp_path: Path) -> None:
    study = _study(tmp_path / "run")
    study["rating"] = {"enabled": False}  # the toy needs generations only; keep the run short
    study["scoring"]["judges"] = []
    cfg = StudyConfig.model_validate(study)
    specs = (*STAGES[:-1], WORDCOUNT_STAGE, STAGES[-1])  # the one spec line

    plan = plan_study(cfg, specs=specs)
    assert [s.name for s in plan.stages][-2:] == ["wordcount", "report"]
    base = stage_keys(build_stages(cfg, progress=False))
    with_toy = stage_keys(build_stages(cfg, progress=False, specs=specs))
    assert {k: v for k, v in with_toy.items() if k != "wordcount"} == base  # nothing else changes key

    first = run_study(cfg, progress=False, specs=specs)
    record = next(s for s in first.stages if s.name == "wordcount")
    assert record.status == "ran" and isinstance(record.facts, WordCountFacts)
    counted: dict[str, int] = {}
    for folder in sorted((tmp_path / "run" / "generations").iterdir()):
        for line in (folder / "generations.jsonl").read_text().splitlines():
            row = json.loads(line)
            counted[row["system"]] = counted.get(row["system"], 0) + len(row["output"].split())
    assert json.loads((tmp_path / "run" / "wordcount" / "wordcount.json").read_text()) == counted
    assert (record.facts.systems, record.facts.words) == (2, sum(counted.values())) and record.facts.words > 0
    assert json.loads(first.model_dump_json())["stages"][-2]["facts"] == {"systems": 2, "words": record.facts.words}

    again = run_study(cfg, progress=False, specs=specs)
    assert {s.status for s in again.stages} == {"skipped"}
    edited = cfg.model_copy(update={"generation": cfg.generation.model_copy(update={"limit": 4})})
    third = {s.name: s.status for s in run_study(edited, progress=False, specs=specs).stages}
    assert third["wordcount"] == "ran" and third["dataset"] == "skipped"  # downstream of generation only


def test_a_spec_that_depends_on_a_later_stage_is_refused(tmp_path: Path) -> None:
    cfg = StudyConfig.model_validate(_study(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"wordcount.*generate"):
        build_stages(cfg, specs=(STAGES[0], WORDCOUNT_STAGE, *STAGES[1:]))
