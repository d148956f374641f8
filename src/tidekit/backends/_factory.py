"""``load_backend``: build a backend from its config, by kind (the one extension point).

A new kind is one entry in :data:`BACKENDS`, a callable taking a :class:`BackendConfig`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from tidekit.backends._protocol import Backend, BackendConfig

__all__ = ["BACKENDS", "load_backend"]

# kind -> "module:factory", imported only when that kind is used (torch, SDKs are heavy)
BACKENDS: dict[str, str] = {
    "hf": "tidekit.backends._hf:HFBackend",
    "openai": "tidekit.backends._openai:OpenAIBackend",
    "anthropic": "tidekit.backends._anthropic:AnthropicBackend",
    "vllm": "tidekit.backends._vllm:VLLMBackend",
}


def load_backend(config: BackendConfig) -> Backend:
    """The backend ``config`` describes, loaded and ready (weights in memory, server reachable)."""
    module, _, name = BACKENDS[config.kind].partition(":")
    factory: Callable[[BackendConfig], Backend] = getattr(importlib.import_module(module), name)
    return factory(config)
