"""tidekit: trauma-informed empathetic dialogue with small language models.

A toolkit and CLI that reproduces the TIDE study (500 PTSD personas x 20 emotional scenarios,
small models evaluated zero-shot and fine-tuned, human ratings of perceived empathy) and goes
beyond it. tidekit is research software: it is not therapy and its models are not clinicians.

Importing ``tidekit`` is cheap: the public functions below load their stage lazily, and
nothing heavy (torch, transformers) is imported until a function that needs it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

from tidekit._version import __version__

# public name -> module that defines it; loaded on first attribute access (PEP 562)
_LAZY: dict[str, str] = {
    "load_dataset": "tidekit.data",
    "save_dataset": "tidekit.data",
    "validate_dataset": "tidekit.data",
    "split_dataset": "tidekit.data",
    "summarize": "tidekit.data",
    "generate": "tidekit.generation",
    "load_backend": "tidekit.backends",
    "run_requests": "tidekit.generation",
    "sample_personas": "tidekit.personas",
    "build_dataset": "tidekit.builder",
    "apply_review": "tidekit.builder",
    "score": "tidekit.metrics",
    "train_scorer": "tidekit.scorer",
    "create_study": "tidekit.rating",
    "simulate_ratings": "tidekit.rating",
    "export_ratings": "tidekit.rating",
    "finetune": "tidekit.finetuning",
    "merge_adapter": "tidekit.finetuning",
    "ceiling_analysis": "tidekit.analysis",
    "analyze": "tidekit.analysis",
    "report": "tidekit.reporting",
    "run_study": "tidekit.study",
    "load_study": "tidekit.study",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tidekit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
