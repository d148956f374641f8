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

from finetuning.conftest import tiny_config
from tidekit.errors import ConfigError


def _config_file(tmp_path: Path, out: Path) -> Path:
    # 2 steps, validation only at the end: only the tracker is under test here
    raw = tiny_config(out, train={"max_steps": 2}, eval={"at_start": False, "steps": None}).model_dump(mode="json")
    raw["data"]["max_train_examples"] = 2
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _wandb_records(path: Path) -> list[Any]:
    """The protobuf records of a W&B run file: a 7-byte W&B header, then a LevelDB-style log of
    32 KiB blocks whose records (7-byte header: crc, length, type) may span blocks."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, pos, block, pending, out = path.read_bytes(), 7, 32768, b"", []
    assert data[:4] == b":W&B", data[:7]
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        payload, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # full, first
            pending = payload
        elif kind in (3, 4):  # middle, last
            pending += payload
        else:
            break
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def _train_losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("kind") == "train" and "loss" in r]


@pytest.mark.slow
def test_report_to_tensorboard_writes_the_training_loss(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "ft"
    result = run_cli("finetune", _config_file(tmp_path, out), "train.report_to=tensorboard", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["steps"] == 2  # --json: stdout is the result alone
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, sorted(p.name for p in out.iterdir())
    acc = EventAccumulator(str(events[0].parent)).Reload()
    logged = [e.value for e in acc.Scalars("train/loss")]
    assert logged == pytest.approx(_train_losses(out), rel=1e-5)  # the same figures as metrics.jsonl
    assert len(logged) == 2
    assert [e.value for e in acc.Scalars("eval/loss")] == pytest.approx(
        [json.loads(result.out)["eval_loss_after"]], rel=1e-5)  # the final validation loss too


@pytest.mark.slow
def test_report_to_wandb_offline_writes_a_run_folder(tmp_path: Path, run_cli: Callable[..., Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "ft"
    result = run_cli("finetune", _config_file(tmp_path, out), "train.report_to=wandb", "train.run_name=tiny",
                     "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["steps"] == 2
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((out / "wandb").iterdir()) if (out / "wandb").exists() else "no OUT/wandb"
    records = _wandb_records(next(runs[0].glob("run-*.wandb")))  # the run's log, what 'wandb sync' uploads
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert (run.display_name, run.project) == ("tiny", "tidekit")
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert [h["train/loss"] for h in history if "train/loss" in h] == pytest.approx(_train_losses(out), rel=1e-5)
    assert [h["eval/loss"] for h in history if "eval/loss" in h] == pytest.approx(
        [json.loads(result.out)["eval_loss_after"]], rel=1e-5)
    assert records[-1].WhichOneof("record_type") == "exit"  # the run was finished, not left open


def test_wandb_without_a_key_or_offline_mode_is_refused_before_work(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tidekit.finetuning import finetune

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
