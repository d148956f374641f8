"""``load_backend``: build a backend from its config, by kind (the one extension point).

The kinds are the registry :data:`~tidekit.backends._protocol.BACKENDS`, filled by
``register_backend`` calls in :mod:`tidekit.backends._options` (a kind's factory and its options
model); importing this module makes sure they ran.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from tidekit.backends import _options  # noqa: F401  (registers the built-in kinds)
from tidekit.backends._protocol import BACKENDS, Backend, BackendConfig

__all__ = ["BACKENDS", "backend_kinds", "load_backend"]


def backend_kinds() -> list[str]:
    """The registered kinds, sorted (for CLI choices and messages)."""
    return sorted(BACKENDS)


def load_backend(config: BackendConfig) -> Backend:
    """The backend ``config`` describes, loaded and ready (weights in memory, server reachable)."""
    spec = BACKENDS[config.kind]
    if not isinstance(config, spec.options):  # e.g. a base BackendConfig built by model_construct
        config = spec.options.model_validate(config.model_dump())
    module, _, name = spec.factory.partition(":")
    factory: Callable[[Any], Backend] = getattr(importlib.import_module(module), name)
    return factory(config)
