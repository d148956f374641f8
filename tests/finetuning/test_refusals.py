"""Bad input is refused with a clear error before any training step runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetuning.conftest import tiny_config
from tidekit.errors import ConfigError, DataError
from tidekit.finetuning import FinetuneConfig, finetune


def _no_training_happened(out: Path) -> None:
    assert not (out / "checkpoints").exists()
    assert not (out / "adapter_model.safetensors").exists()
    assert not (out / "metrics.jsonl").exists()


def _without_replies(tmp_path: Path) -> Path:
    from tidekit.data import Dataset, load_dataset, sample_path, save_dataset

    sample = load_dataset(sample_path())
    stripped = Dataset(personas=sample.personas,
                       conversations=[c.model_copy(update={"reference": None}) for c in sample.conversations])
    return save_dataset(stripped, tmp_path / "no-replies", "jsonl")


def test_data_without_supporter_turns_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError, match="has a supporter turn or a reference reply, so there is nothing to learn"):
        finetune(tiny_config(out, data=_without_replies(tmp_path)))
    _no_training_happened(out)


def test_qlora_without_cuda_is_refused(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal is for CPU-only machines")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"4bit \(QLoRA\) needs a CUDA GPU"):
        finetune(tiny_config(out, train={"quantization": "4bit"}))
    _no_training_happened(out)


def test_fp16_on_cpu_is_refused(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("fp16 is valid on CUDA")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        finetune(tiny_config(tmp_path / "out", train={"precision": "fp16"}))


def test_config_mistakes_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        from tidekit._config import load_config

        load_config(FinetuneConfig, None, ["data.path=x", "out=y", "lora.rnak=8", "train.learning_rate=-1"])
    assert "lora.rnak" in str(err.value) and "train.learning_rate" in str(err.value)
    with pytest.raises(ValueError, match="eval_split must differ"):
        FinetuneConfig.model_validate({"data": {"path": "x", "eval_split": "train"}, "out": "y"})


@pytest.mark.slow
def test_max_length_shorter_than_the_prompt_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"max_length=64 is shorter than the prompt of 8 training example"):
        finetune(tiny_config(out, train={"max_length": 64}))
    _no_training_happened(out)


@pytest.mark.slow
def test_unknown_target_module_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"'qkv_proj' not found in LlamaForCausalLM\. Its linear layers are: "
                                          r"down_proj, gate_proj, k_proj"):
        finetune(tiny_config(out, lora={"target_modules": ["q_proj", "qkv_proj"]}))
    _no_training_happened(out)


def test_cli_refusal_is_one_clean_message(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("QLoRA is allowed on CUDA")
    config = tmp_path / "ft.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "out").model_dump(mode="json")))
    result = run_cli("finetune", config, "train.quantization=4bit")
    assert result.code == 2
    assert result.err.startswith("error:") and "Traceback" not in result.err and "train.quantization" in result.err
    both = run_cli("finetune", "train", config, "--resume", "--force")
    assert both.code == 2 and "contradict" in both.err


@pytest.mark.parametrize("tracker", ["tensorboard", "wandb"])
def test_tracker_without_the_package_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tracker: str) -> None:
    import sys

    from tidekit.errors import MissingDependencyError

    # whether or not it is installed here: a None entry makes importlib find no such package
    monkeypatch.setitem(sys.modules, tracker, None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'tidekit\[tracking\]'"):
        finetune(tiny_config(tmp_path / "out", train={"report_to": tracker}))
    _no_training_happened(tmp_path / "out")
