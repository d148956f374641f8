"""Model backends and the model registry.

The registry (:data:`MODELS`) maps aliases to models; :func:`resolve_model_path` turns an alias
into a local folder (converting the package-shipped SmolLM2 once into a cache folder).
"""

from tidekit.backends._registry import (
    MODELS,
    ModelSpec,
    cache_dir,
    get_model,
    hub_offline,
    resolve_model_path,
    sha256_file,
    smollm2_gguf,
)

__all__ = [
    "MODELS",
    "ModelSpec",
    "cache_dir",
    "get_model",
    "hub_offline",
    "resolve_model_path",
    "sha256_file",
    "smollm2_gguf",
]
