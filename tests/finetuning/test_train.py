"""LoRA fine-tuning of the real SmolLM2-135M on CPU (the acceptance tests of the stage).

One 30-step run on the bundled sample is shared by the module: its loss falls, its saved
adapter reproduces the in-memory model's greedy outputs, a run interrupted after step 15 and
resumed ends where it ends, a rerun is a no-op, and merging gives a plain transformers model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetuning.conftest import tiny_config
from tidekit.errors import ConfigError
from tidekit.finetuning import FinetuneResult, finetune, last_checkpoint, read_metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> FinetuneResult:
    out = tmp_path_factory.mktemp("ft") / "baseline"
    return finetune(tiny_config(out), keep_model=True)


def _train_losses(out: str | Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in read_metrics(out) if row["kind"] == "train"}


def _prompts(tokenizer: Any) -> list[Any]:
    from finetuning.conftest import SHORT_PROMPT
    from tidekit.data import load_dataset, sample_path
    from tidekit.generation import conversation_messages

    convs = load_dataset(sample_path()).conversations[:2]
    return [tokenizer.apply_chat_template([m.model_dump() for m in conversation_messages(c, SHORT_PROMPT)],
                                          add_generation_prompt=True, return_tensors="pt", return_dict=True)
            for c in convs]


def _greedy(model: Any, prompts: list[Any], tokenizer: Any) -> list[list[int]]:
    import torch

    model.eval()
    outputs = []
    with torch.no_grad():
        for enc in prompts:
            ids = model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            outputs.append(ids[0, enc["input_ids"].shape[1]:].tolist())
    return outputs


def test_training_loss_falls_and_outputs_are_saved_together(baseline: FinetuneResult) -> None:
    losses = _train_losses(baseline.out)
    assert sorted(losses) == list(range(1, 31))
    first, last = [losses[s] for s in (1, 2, 3)], [losses[s] for s in (28, 29, 30)]
    fall = 1 - (sum(last) / 3) / (sum(first) / 3)
    assert fall >= 0.20, f"training loss fell only {fall:.1%}: {losses}"
    assert baseline.eval_loss_before is not None and baseline.eval_loss_after is not None
    assert baseline.eval_loss_after < baseline.eval_loss_before
    out = Path(baseline.out)
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "README.md",
                 "metrics.jsonl", "manifest.json"):
        assert (out / name).is_file(), name
    card = (out / "README.md").read_text()
    for needle in ("base_model: smollm2-135m", "## Data", "## Hyper-parameters", "## Metrics", "## Intended use",
                   "## Limits", "not therapy"):
        assert needle in card, needle
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["counts"]["steps"] == 30
    assert manifest["extra"]["system_prompt"].startswith("You are a warm")
    assert manifest["models"][0]["role"] == "base" and manifest["models"][0]["sha256"]
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16
    assert baseline.tokens_per_s is not None and baseline.tokens_per_s > 0


def test_loss_is_on_supporter_reply_tokens_only(baseline: FinetuneResult, tmp_path: Path) -> None:
    import torch
    from datasets import Dataset as HFDataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from tidekit.backends import resolve_model_path
    from tidekit.data import load_dataset, sample_path
    from tidekit.finetuning import build_examples

    conv = load_dataset(sample_path()).conversations[0]
    example = build_examples([conv], "S", system_role=True)[0]
    # tokenise the example exactly as finetune() hands it to TRL (a fresh model: no side effects)
    model = AutoModelForCausalLM.from_pretrained(str(resolve_model_path("smollm2-135m")), dtype=torch.float32)
    args = SFTConfig(output_dir=str(tmp_path), completion_only_loss=True, max_length=1024, use_cpu=True, bf16=False,
                     report_to="none", gradient_checkpointing=False)
    data = HFDataset.from_list([{"prompt": example["prompt"], "completion": example["completion"]}])
    row = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=baseline.tokenizer).train_dataset[0]
    trained = [tok for tok, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    # the reply and its end-of-turn carry the loss; nothing of the system prompt or client turn
    assert baseline.tokenizer.decode(trained) == f"{conv.reference}<|im_end|>\n"
    assert len(trained) < len(row["input_ids"])


def test_saved_adapter_reloads_to_the_same_greedy_outputs(baseline: FinetuneResult) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tidekit.backends import resolve_model_path

    tokenizer = baseline.tokenizer
    prompts = _prompts(tokenizer)
    in_memory = _greedy(baseline.model, prompts, tokenizer)
    base = AutoModelForCausalLM.from_pretrained(str(resolve_model_path("smollm2-135m")), dtype=torch.float32)
    reloaded = PeftModel.from_pretrained(base, baseline.out)
    assert _greedy(reloaded, prompts, tokenizer) == in_memory
    with reloaded.disable_adapter():  # and the adapter matters: the base model answers differently
        assert _greedy(reloaded, prompts, tokenizer) != in_memory


class _Crash(RuntimeError):
    """Stands in for a killed process, right after the step-15 checkpoint is written."""


def _crash_after(step: int) -> Any:
    from transformers import TrainerCallback

    class CrashAfterCheckpoint(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == step:
                raise _Crash(f"simulated crash after the checkpoint of step {step}")

    return CrashAfterCheckpoint()


def test_interrupted_and_resumed_run_ends_at_the_same_loss(baseline: FinetuneResult, tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    config = tiny_config(out)
    with pytest.raises(_Crash):
        finetune(config, callbacks=[_crash_after(15)])
    checkpoint = last_checkpoint(out)
    assert checkpoint is not None and checkpoint.name == "checkpoint-15"
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    with pytest.raises(ConfigError, match="--resume"):
        finetune(config)  # an unfinished run is never silently restarted

    resumed = finetune(config, if_exists="resume")
    assert resumed.resumed_from_step == 15 and resumed.steps == 30
    mine, reference = _train_losses(out), _train_losses(baseline.out)
    assert sorted(mine) == list(range(1, 31))  # one line per step: the log continues, no gaps or repeats
    for step in range(1, 31):  # 1-15: the same seed gives the same run; 16-30: resumed state
        assert mine[step] == pytest.approx(reference[step], abs=2e-3), step
    assert resumed.eval_loss_after == pytest.approx(baseline.eval_loss_after, abs=2e-3)


def test_rerun_is_a_no_op_and_the_cli_reports_it(baseline: FinetuneResult, tmp_path: Path,
                                                  run_cli: Callable[..., Any]) -> None:
    config = tmp_path / "ft.yaml"
    config.write_text(yaml.safe_dump(tiny_config(Path(baseline.out)).model_dump(mode="json")))
    before = (Path(baseline.out) / "adapter_model.safetensors").stat().st_mtime_ns
    result = run_cli("finetune", config)
    assert result.code == 0, result.err
    assert "nothing to do" in result.out
    assert (Path(baseline.out) / "adapter_model.safetensors").stat().st_mtime_ns == before
    changed = run_cli("finetune", config, "lora.rank=4")
    assert changed.code == 2 and "lora.rank" in changed.err and "--force" in changed.err


def test_merge_writes_weights_plain_transformers_loads(baseline: FinetuneResult, tmp_path: Path,
                                                       run_cli: Callable[..., Any]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    merged_dir = tmp_path / "merged"
    result = run_cli("finetune", "merge", baseline.out, "--out", merged_dir)
    assert result.code == 0, result.err
    assert (merged_dir / "config.json").is_file() and not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    prompts = _prompts(baseline.tokenizer)
    with torch.no_grad():
        a = baseline.model.eval()(**prompts[0]).logits
        b = merged(**prompts[0]).logits
    assert torch.allclose(a, b, atol=2e-3), (a - b).abs().max()
    assert _greedy(merged, prompts, baseline.tokenizer) == _greedy(baseline.model, prompts, baseline.tokenizer)
    assert "Merged from the adapter" in (merged_dir / "README.md").read_text()
    again = run_cli("finetune", "merge", baseline.out, "--out", merged_dir)
    assert again.code == 0 and "already merged" in again.out


def test_generate_with_the_adapter_records_fine_tuned_outputs(baseline: FinetuneResult, tmp_path: Path) -> None:
    from finetuning.conftest import SHORT_PROMPT
    from tidekit.data import read_generations, sample_path
    from tidekit.generation import GenerateConfig, generate

    config = GenerateConfig.model_validate({
        "data": str(sample_path()), "split": "all", "limit": 2, "system_prompt": SHORT_PROMPT,
        "params": {"max_new_tokens": 16, "seed": 0},
        "backend": {"model": "smollm2-135m", "adapter": baseline.out, "dtype": "float32", "batch_size": 1}})
    result = generate(config, out=tmp_path / "gen", progress=False)
    assert result.errors == 0
    records = read_generations(tmp_path / "gen")
    assert {r.condition for r in records} == {"fine_tuned"} and records[0].system == "smollm2-135m:fine_tuned"
    assert records[0].adapter == baseline.out
    expected = [baseline.tokenizer.decode(ids, skip_special_tokens=True).strip()
                for ids in _greedy(baseline.model, _prompts(baseline.tokenizer), baseline.tokenizer)]
    assert [(r.output or "").strip() for r in sorted(records, key=lambda r: r.conversation_id)] == expected
