"""What makes LoRA training cheaper on a CPU: adapters on the last blocks only (the backward
pass stops below them) and the LM head projecting only the labelled positions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetuning.conftest import tiny_config
from tidekit.errors import ConfigError
from tidekit.finetuning import finetune, read_metrics


def test_last_layers_beyond_the_model_is_refused_before_work(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    with pytest.raises(ConfigError, match=r"lora.last_layers: 31 is more than the 30 transformer blocks"):
        finetune(tiny_config(out, lora={"last_layers": 31}))
    assert not out.exists()


@pytest.mark.slow
def test_adapters_on_the_last_blocks_only_and_the_loss_still_falls(tmp_path: Path) -> None:
    from safetensors import safe_open

    result = finetune(tiny_config(tmp_path / "ft", lora={"last_layers": 10, "dropout": 0.0}))
    out = Path(result.out)
    assert json.loads((out / "adapter_config.json").read_text())["layers_to_transform"] == list(range(20, 30))
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        blocks = {int(k.split(".layers.")[1].split(".")[0]) for k in f.keys()}  # noqa: SIM118
    assert blocks == set(range(20, 30))
    losses = [row["loss"] for row in read_metrics(out) if row["kind"] == "train"]
    fall = 1 - sum(losses[-3:]) / sum(losses[:3])
    assert fall >= 0.20, f"training loss fell only {fall:.1%}: {losses}"
    assert result.eval_loss_after is not None and result.eval_loss_before is not None
    assert result.eval_loss_after < result.eval_loss_before
    # the 20 frozen blocks ran once per distinct example: 8 training conversations seen ~4 times
    # in 30 steps of 1, and the 2 validation ones evaluated before and after
    cache = json.loads((out / "manifest.json").read_text())["extra"]["frozen_blocks_cache"]
    assert cache["blocks"] == 20 and cache["computed"] == 8 + 2 and cache["served"] == 30 - 8 + 2


@pytest.mark.slow
def test_compact_head_on_cpu_gives_trl_loss_and_gradients_from_labelled_positions_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside ``_compact_lm_head`` TRL's fused head sees only the positions that carry a label,
    and the loss and every adapter gradient equal TRL's own CPU path (every position)."""
    import torch
    import trl.trainer.utils as trl_utils

    from tidekit.finetuning._preflight import resolve_hardware
    from tidekit.finetuning._train import (
        _compact_lm_head,
        _examples,
        _load_conversations,
        _load_model,
        _load_tokenizer,
        _trainer,
    )

    cfg = tiny_config(tmp_path / "ft", train={"batch_size": 2, "max_length": 256})
    hw = resolve_hardware("cpu", "fp32", "none")

    from types import SimpleNamespace

    train_convs, eval_convs = _load_conversations(cfg, SimpleNamespace(extra={}))  # type: ignore[arg-type]
    path, tokenizer, system_role = _load_tokenizer(cfg.model)
    train, evals, _ = _examples(cfg, train_convs, eval_convs, system_role)
    trainer, _ = _trainer(cfg, hw, _load_model(path, hw), tokenizer, train, evals, tmp_path / "ft", [], False)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    positions = batch["labels"][:, 1:].numel()
    assert labelled < positions  # the prompt is masked, so compacting has something to drop

    seen: list[int] = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def spy(hidden: Any, *args: Any) -> Any:
        seen.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", spy)
    model = trainer.model
    model.train()

    def loss_and_grads() -> tuple[float, dict[str, Any]]:
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    torch.manual_seed(0)
    full_loss, full_grads = loss_and_grads()
    with _compact_lm_head("cpu"):
        torch.manual_seed(0)
        compact_loss, compact_grads = loss_and_grads()
    assert seen == [positions, labelled]
    assert compact_loss == pytest.approx(full_loss, rel=1e-5)
    for name, grad in full_grads.items():
        torch.testing.assert_close(compact_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert trl_utils._use_triton(torch.device("cpu")) is False  # restored after the block
