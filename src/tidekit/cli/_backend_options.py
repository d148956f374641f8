"""Command-line options shared by the verbs that load a model (generate, serve).

The ``--backend`` choices and the kinds named in each option's help come from the backend
registry (``tidekit.backends.BACKENDS``), so a new kind needs no edit here. An option that the
chosen kind does not have (``--device`` with ``--backend openai``) becomes an override that the
config validation rejects, naming the option and the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from tidekit.backends import BACKENDS, backend_kinds

__all__ = ["backend_flags", "backend_options"]

F = TypeVar("F", bound=Callable[..., Any])


def _kinds_with(field: str) -> str:
    """'hf, vllm': the kinds whose options include ``field``."""
    return ", ".join(kind for kind in backend_kinds() if field in BACKENDS[kind].options.model_fields)


_OPTIONS = [
    click.option("--model", default=None, help="Registry alias, local folder, .gguf file, Hub id, or the "
                                               "server-side model name of a remote backend. [smollm2-135m]"),
    click.option("--adapter", default=None, type=click.Path(), help=f"LoRA adapter folder ({_kinds_with('adapter')})."),
    click.option("--backend", "kind", default=None, type=click.Choice(backend_kinds()),
                 help="Which backend runs the model (the registry's kinds). [hf]"),
    click.option("--base-url", default=None, help=f"{_kinds_with('base_url')}: server URL, e.g. "
                                                  "http://127.0.0.1:8000/v1."),
    click.option("--device", default=None, help=f"{_kinds_with('device')}: auto, cpu or cuda[:N]."),
    click.option("--dtype", default=None, type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
                 help=f"{_kinds_with('dtype')}: weights dtype (auto: bf16 where supported)."),
    click.option("--batch-size", type=int, default=None,
                 help=f"{_kinds_with('batch_size')}: most requests per forward pass."),
]


def backend_options(func: F) -> F:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


_FIELDS = {"model": "model", "adapter": "adapter", "kind": "kind", "base_url": "base_url", "device": "device",
           "dtype": "dtype", "batch_size": "batch_size"}  # click parameter -> backend config key


def backend_flags(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The backend options given, by config key, typed as click parsed them (taken out of
    ``kwargs``; an option not given, None, is left out so the config's value stands)."""
    out = {}
    for option, field in _FIELDS.items():
        value = kwargs.pop(option, None)
        if value is not None:
            out[field] = value
    return out
