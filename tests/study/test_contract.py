"""The stage contract: README verbs on ``tidekit``, seeds derived from the master seed, and
fine-tuning resume that never deletes checkpoints it cannot continue."""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

README_VERBS = ("build_dataset", "generate", "finetune", "score", "analyze", "report", "run_study")


def test_every_readme_verb_is_a_callable_on_tidekit_after_importing_every_subpackage() -> None:
    import tidekit

    for module in pkgutil.iter_modules(tidekit.__path__):
        if module.name != "__main__":
            importlib.import_module(f"tidekit.{module.name}")
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for verb in README_VERBS:
        assert f"tidekit.{verb}" in readme, verb
        assert callable(getattr(tidekit, verb)), verb
        assert not isinstance(getattr(tidekit, verb), type(tidekit)), f"tidekit.{verb} is a module"


def _plan(run_cli: Callable[..., Any], *args: str) -> dict[str, Any]:
    config = Path(__file__).parents[2] / "configs" / "quickstart.yaml"
    result = run_cli("run", config, "--dry-run", "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def test_stage_seeds_derive_from_the_master_seed(run_cli: Callable[..., Any]) -> None:
    one, two = _plan(run_cli, "seed=1"), _plan(run_cli, "seed=2")
    seeds1 = {s["name"]: s.get("seed") for s in one["stages"]}
    seeds2 = {s["name"]: s.get("seed") for s in two["stages"]}
    for stage in ("dataset", "split", "score", "rating", "analysis"):
        assert isinstance(seeds1[stage], int) and isinstance(seeds2[stage], int), stage
        assert seeds1[stage] != seeds2[stage], stage
    assert len({seeds1["dataset"], seeds1["split"], seeds1["score"]}) == 3  # a stream per stage
    assert one["seeds"]["personas"] != two["seeds"]["personas"]
    # an explicit seed wins over the derived one, and the same master seed gives the same seeds
    pinned = _plan(run_cli, "seed=1", "dataset.split.seed=5")
    assert {s["name"]: s.get("seed") for s in pinned["stages"]}["split"] == 5
    assert _plan(run_cli, "seed=1")["seeds"] == one["seeds"]
    # the dry run names each generation stage's engine and its time from a measured rate
    generate = [s for s in one["stages"] if s["name"].startswith("generate:")]
    assert {s["engine"] for s in generate} == {"hf"}
    tokens = one["eval_conversations"] * 96  # the quickstart's max_new_tokens
    assert all(s["est_hours"] == pytest.approx(tokens / s["rate_tok_s"] / 3600, abs=1e-3) for s in generate)


def test_the_paper_plan_runs_vllm_and_says_where_no_rate_was_measured(run_cli: Callable[..., Any]) -> None:
    config = Path(__file__).parents[2] / "configs" / "tide-paper.yaml"
    result = run_cli("run", config, "--dry-run", "--json")
    assert result.code == 0, result.err
    generate = [s for s in json.loads(result.out)["stages"] if s["name"].startswith("generate:")]
    assert len(generate) == 16 and {s["engine"] for s in generate} == {"vllm"}
    assert all(s["est_hours"] is None and "no measured rate" in s["rate_source"] for s in generate)


def _cuda_only_study(tmp_path: Path, out: Path, **finetune: Any) -> Path:
    study = {
        "name": "cuda-only fine-tuning", "out": str(out), "seed": 0,
        "dataset": {"source": "sample", "split": {"ratios": [0.6, 0.2, 0.2]}},
        "systems": [{"model": "smollm2-135m", "conditions": ["fine_tuned"]}],
        "finetune": {"train": {"precision": "fp16", "max_steps": 30, "batch_size": 2}, **finetune},
        "rating": {"enabled": False},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _fake_checkpoints(folder: Path) -> Path:
    """What a run killed at step 10 leaves: a checkpoint the trainer would resume from."""
    checkpoint = folder / "checkpoints" / "checkpoint-10"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 10}))
    (checkpoint / "adapter_model.safetensors").write_bytes(b"weights")
    return checkpoint


@pytest.mark.parametrize("same_settings", [True, False])
def test_a_resumed_cuda_only_study_on_a_cpu_keeps_its_checkpoints(
        tmp_path: Path, run_cli: Callable[..., Any], same_settings: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    study = _cuda_only_study(tmp_path, out)
    first = run_cli("run", study, "--no-progress")
    assert first.code != 0 and "fp16" in first.err and "Traceback" not in first.err
    folder = out / "finetune" / "smollm2-135m"
    assert (folder / ".stage-started.json").is_file()  # the stage started and did not finish
    checkpoint = _fake_checkpoints(folder)
    if not same_settings:  # the study was edited: the stage would replace the old run, after its checks
        study = _cuda_only_study(tmp_path, out, seed=3)
    again = run_cli("run", study, "--no-progress")
    assert again.code != 0
    assert "fp16" in again.err and "CUDA" in again.err and "Traceback" not in again.err
    assert checkpoint.is_dir() and (checkpoint / "adapter_model.safetensors").read_bytes() == b"weights"


def test_finetune_if_exists_modes(tmp_path: Path) -> None:
    from tidekit.data import sample_path
    from tidekit.errors import ConfigError
    from tidekit.finetuning import FinetuneConfig, finetune

    out = tmp_path / "ft"
    checkpoint = _fake_checkpoints(out)
    config = FinetuneConfig.model_validate({"out": str(out), "data": {"path": str(sample_path())},
                                            "lora": {"target_modules": ["q_proj", "nope_proj"]}})
    with pytest.raises(ConfigError, match="unfinished run"):
        finetune(config)  # error (the default): refuses, deletes nothing
    with pytest.raises(ConfigError, match="nope_proj"):
        finetune(config, if_exists="replace")  # a wrong LoRA target fails before anything is deleted
    assert checkpoint.is_dir()
