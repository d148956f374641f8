"""A whole ``tidekit run`` without weights: the library's mock backend answers as two systems
and as the judge, so every stage after the dataset runs for real (split, generation, scoring
with a judge, simulated ratings, analysis, report) in seconds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def _study(out: Path) -> dict[str, Any]:
    return {
        "name": "mock study", "out": str(out), "seed": 3,
        "dataset": {"source": "sample", "split": {"ratios": [0.4, 0.2, 0.4]}},
        "systems": [
            {"model": "mock-echo", "conditions": ["zero_shot"], "backend": {"kind": "mock", "reply": "echo"}},
            {"model": "mock-seeded", "conditions": ["zero_shot"], "backend": {"kind": "mock", "reply": "seeded"}},
        ],
        "generation": {"limit": 8, "params": {"max_new_tokens": 24}},
        "scoring": {"metrics": [{"name": "rouge_l"}, {"name": "distinct"}, {"name": "length_ratio"}],
                    "judges": [{"name": "mock-judge", "backend": {"kind": "mock"}}],
                    "judge": {"bias_probe_n": 0}, "bootstrap": {"n_resamples": 100}},
        "rating": {"simulate": True, "simulated_raters": 24,
                   "study": {"ratings_per_item": 4, "items_per_rater": 6, "attention_checks": 1}},
        "analysis": {"by": ["age_group", "gender"], "bootstrap": 0, "ordinal": "none"},
    }


def test_a_whole_study_runs_on_mock_backends(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    out = tmp_path / "run"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_study(out)))
    first = run_cli("run", path, "--json", "--no-progress")
    assert first.code == 0, first.err
    stages = {s["name"]: s for s in json.loads(first.out)["stages"]}
    assert {s["status"] for s in stages.values()} == {"ran"}
    assert set(stages) >= {"dataset", "split", "generate:mock-echo:zero_shot", "generate:mock-seeded:zero_shot",
                           "score", "rating", "analysis", "report"}
    assert stages["generate:mock-echo:zero_shot"]["facts"]["records"] == 8
    manifest = json.loads((out / "split" / "manifest.json").read_text())
    plan = json.loads(run_cli("run", path, "--dry-run", "--json").out)
    assert manifest["seed"] == plan["seeds"]["split"]  # the manifest records the effective seed
    scores = json.loads((out / "scores" / "manifest.json").read_text())
    assert scores["extra"]["judge"]["parse_failure_rate"] == {"mock-judge": 0.0}
    assert (out / "report" / "report.html").is_file()
    again = run_cli("run", path, "--json", "--no-progress")
    assert {s["status"] for s in json.loads(again.out)["stages"]} == {"skipped"}
