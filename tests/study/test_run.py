"""`tidekit run` end to end on a tiny study with the real SmolLM2 and MiniLM.

One run (logging each stage's figures to TensorBoard), then: a rerun with nothing changed does
no work; editing only the analysis settings reruns only analysis and report; a run killed
(SIGKILL) in the generation stage after it committed new work, and rerun, completes with every
conversation answered exactly once, reusing the work done before the kill. (How fast a no-op
rerun is, is measured by benchmarks/study_rerun.py, not asserted here.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

STUDY = {
    "name": "tiny study (simulated ratings)",
    "seed": 0,
    "dataset": {"source": "sample", "split": {"ratios": [0.4, 0.2, 0.4], "seed": 0}},
    "systems": [{"model": "smollm2-135m", "conditions": ["zero_shot"], "backend": {"batch_size": 4}}],
    "generation": {"split": "test", "limit": 6, "params": {"max_new_tokens": 12}},
    "scoring": {"metrics": [{"name": "cosine"}, {"name": "rouge_l"}, {"name": "distinct"}],
                "bootstrap": {"n_resamples": 200}},
    "rating": {"simulate": True, "simulated_raters": 24,
               "study": {"ratings_per_item": 4, "items_per_rater": 6, "attention_checks": 1}},
    "analysis": {"by": ["age_group", "gender"]},
    "tracking": {"report_to": "tensorboard"},
}


def _write(tmp: Path, out: Path, **changes: object) -> Path:
    study = {**STUDY, "out": str(out), **changes}
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _statuses(result_json: str) -> dict[str, str]:
    return {s["name"]: s["status"] for s in json.loads(result_json)["stages"]}


def test_run_rerun_edit_and_kill(tmp_path: Path, run_cli: Callable[..., object]) -> None:
    out = tmp_path / "run"
    study = _write(tmp_path, out)
    first = run_cli("run", study, "--json", "--no-progress")
    assert first.code == 0, first.err  # type: ignore[attr-defined]
    assert set(_statuses(first.out).values()) == {"ran"}  # type: ignore[attr-defined]
    assert (out / "report" / "report.html").is_file()
    generations = (out / "generations" / "smollm2-135m__zero_shot" / "generations.jsonl").read_text()
    assert len(generations.splitlines()) == 6
    logged = _tensorboard_scalars(out / "tensorboard")
    assert logged["generate:smollm2-135m:zero_shot/records"] == [6.0]  # each stage's figures, once
    facts = {s["name"]: s["facts"] for s in json.loads(first.out)["stages"]}  # type: ignore[attr-defined]
    assert logged["split/train"] == [float(facts["split"]["train"])]
    assert set(facts) == {tag.split("/")[0] for tag in logged}  # every stage that ran logged something

    again = run_cli("run", study, "--json", "--no-progress")
    assert set(_statuses(again.out).values()) == {"skipped"}  # type: ignore[attr-defined]

    edited = _write(tmp_path, out, analysis={"by": ["age_group", "gender"], "alpha": 0.01})
    third = _statuses(run_cli("run", edited, "--json", "--no-progress").out)  # type: ignore[attr-defined]
    assert {k for k, v in third.items() if v == "ran"} == {"analysis", "report"}

    # kill the run inside the generation stage, then rerun it to completion
    killed = _write(tmp_path, out, generation={"split": "test", "limit": 10, "params": {"max_new_tokens": 24}})
    cache = out / "generations" / "smollm2-135m__zero_shot" / "cache.sqlite"
    before = _cached(cache)  # the first run's 6 replies (other settings: never reused below)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tidekit", "run", str(killed), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.time() + 600
    marker = out / "generations" / "smollm2-135m__zero_shot" / ".stage.json"
    while time.time() < deadline and proc.poll() is None:
        if not marker.exists() and _cached(cache) > before:  # new work committed, stage unfinished
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed mid-stage"
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # it was killed, not finished
    done_before_kill = _cached(cache) - before
    assert not marker.exists() and 1 <= done_before_kill < 10  # killed inside the generation stage
    final = run_cli("run", killed, "--json", "--no-progress")
    assert final.code == 0, final.err  # type: ignore[attr-defined]
    generate = next(s for s in json.loads(final.out)["stages"]  # type: ignore[attr-defined]
                    if s["name"] == "generate:smollm2-135m:zero_shot")
    assert generate["status"] == "ran" and generate["facts"]["cached"] == done_before_kill  # resumed
    rows = [json.loads(line) for line in
            (out / "generations" / "smollm2-135m__zero_shot" / "generations.jsonl").read_text().splitlines()]
    ids = [r["conversation_id"] for r in rows]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert all(r["output"] for r in rows)


def _tensorboard_scalars(folder: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder)).Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _cached(path: Path) -> int:
    import sqlite3

    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=1) as db:
            return int(db.execute("select count(*) from results").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_dry_run_of_the_paper_config_works_offline(run_cli: Callable[..., object]) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "tide-paper.yaml"
    result = run_cli("run", config, "--dry-run", "--json")
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    plan = json.loads(result.out)  # type: ignore[attr-defined]
    assert (plan["personas"], plan["conversations"], plan["models"]) == (500, 10_000, 8)
    assert plan["conditions"] == ["fine_tuned", "zero_shot"] and len(plan["systems"]) == 16
    assert plan["model_calls"] == {"dataset": 20_000, "generate": 16_000, "judge": 17_000}
