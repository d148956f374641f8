"""``train.report_to``: the trainer's own logging to TensorBoard and to W&B (offline, no
network), through the CLI as a user runs it, with the real SmolLM2 and a few steps; and the
refusals that come before any work (a missing package, W&B with no key and no offline mode)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetune.conftest import tiny_config
from tidekit.errors import ConfigError


def _config_file(tmp_path: Path, out: Path) -> Path:
    # 4 steps, no validation: only the tracker is under test here
    raw = tiny_config(out, train={"max_steps": 4}, eval={"at_start": False, "steps": None}).model_dump(mode="json")
    raw["data"]["max_train_examples"] = 4
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train_losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("kind") == "train" and "loss" in r]


@pytest.mark.slow
def test_report_to_tensorboard_writes_the_training_loss(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "ft"
    result = run_cli("finetune", _config_file(tmp_path, out), "train.report_to=tensorboard")
    assert result.code == 0, result.err
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, sorted(p.name for p in out.iterdir())
    acc = EventAccumulator(str(events[0].parent)).Reload()
    logged = [e.value for e in acc.Scalars("train/loss")]
    assert logged == pytest.approx(_train_losses(out), rel=1e-5)  # the same figures as metrics.jsonl
    assert len(logged) == 4


@pytest.mark.slow
def test_report_to_wandb_offline_writes_a_run_folder(tmp_path: Path, run_cli: Callable[..., Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "ft"
    result = run_cli("finetune", _config_file(tmp_path, out), "train.report_to=wandb", "train.run_name=tiny")
    assert result.code == 0, result.err
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((out / "wandb").iterdir()) if (out / "wandb").exists() else "no OUT/wandb"
    assert list(runs[0].glob("run-*.wandb"))  # the run's log, for 'wandb sync'
    summary = json.loads((runs[0] / "files" / "wandb-summary.json").read_text())
    assert summary["train/loss"] == pytest.approx(_train_losses(out)[-1], rel=1e-5)
    meta = json.loads((runs[0] / "files" / "wandb-metadata.json").read_text())
    assert meta.get("program") or meta.get("args") is not None  # a complete run record


def test_wandb_without_a_key_or_offline_mode_is_refused_before_work(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tidekit.finetune import finetune

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="WANDB_MODE=offline"):
        finetune(tiny_config(out, train={"report_to": "wandb"}))
    assert not (out / "manifest.json").exists() and not (out / "wandb").exists()


def test_the_old_tensorboard_key_says_where_it_moved(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    raw = tiny_config(tmp_path / "out").model_dump(mode="json")
    raw["tensorboard"] = True
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = run_cli("finetune", path)
    assert result.code != 0 and "train.report_to" in result.err and "Traceback" not in result.err
