"""Command-line options shared by the verbs that load a model (generate, serve)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from tidekit.backends._factory import BACKENDS

__all__ = ["backend_options", "backend_overrides"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--model", default=None, help="Registry alias, local folder, .gguf file, Hub id, or the "
                                               "server-side model name for openai/anthropic. [smollm2-135m]"),
    click.option("--adapter", default=None, type=click.Path(), help="LoRA adapter folder (hf, vllm)."),
    click.option("--backend", "kind", default=None, type=click.Choice(sorted(BACKENDS)),
                 help="Which backend runs the model (the registry's kinds). [hf]"),
    click.option("--base-url", default=None, help="openai/anthropic/vllm: server URL, e.g. "
                                                  "http://127.0.0.1:8000/v1."),
    click.option("--device", default=None, help="hf: auto, cpu or cuda[:N]."),
    click.option("--dtype", default=None, type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
                 help="hf: weights dtype (auto: bf16 where supported)."),
    click.option("--batch-size", type=int, default=None, help="hf: most requests per forward pass. [32]"),
]


def backend_options(func: F) -> F:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def backend_overrides(kwargs: dict[str, Any], prefix: str = "backend.") -> list[str]:
    """``key=value`` overrides for the options given (None = not given, config wins)."""
    names = {"model": "model", "adapter": "adapter", "kind": "kind", "base_url": "base_url", "device": "device",
             "dtype": "dtype", "batch_size": "batch_size"}
    out = []
    for option, field in names.items():
        value = kwargs.pop(option, None)
        if value is not None:
            out.append(f"{prefix}{field}={value}")
    return out
