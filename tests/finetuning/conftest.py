"""Shared set-up for the fine-tuning tests: a tiny, fast configuration on the bundled sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tidekit.finetuning import FinetuneConfig

# a short system prompt keeps sequences short (the default responder prompt is ~170 tokens)
SHORT_PROMPT = "You are a warm, trauma-informed listener. Reply supportively in a few sentences."


def tiny_config(out: Path, data: Path | None = None, **sections: Any) -> FinetuneConfig:
    """30 steps of batch 1 at max_length 256 on 8 conversations of the sample (~4 epochs): ~250
    tokens per step, a small set the adapter can visibly fit in 30 steps."""
    from tidekit.data import sample_path

    raw: dict[str, Any] = {
        "model": "smollm2-135m",
        "data": {"path": str(data or sample_path()), "system_prompt": SHORT_PROMPT, "max_train_examples": 8},
        "out": str(out),
        "seed": 0,
        "train": {"max_steps": 30, "batch_size": 1, "grad_accum": 1, "max_length": 256, "learning_rate": 1e-3,
                  "lr_scheduler": "constant", "warmup_ratio": 0.0, "logging_steps": 1},
        "eval": {"steps": None, "at_start": True, "max_examples": 2, "batch_size": 2},
        "checkpoints": {"steps": 5, "keep": 2},
        "progress": False,
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(raw.get(name), dict) else values
    return FinetuneConfig.model_validate(raw)
