"""Checks made before any training step: hardware, precision, QLoRA, LoRA target modules.

Every check raises a domain error whose message says what to change, so a run that cannot work
fails in seconds rather than after loading data and weights or, worse, after hours of training.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from pydantic import BaseModel, Field

from tidekit.backends import resolve_model_path
from tidekit.errors import ConfigError, MissingDependencyError

__all__ = ["Hardware", "check_target_modules", "linear_module_names", "resolve_hardware"]


class Hardware(BaseModel):
    """Where and in what precision the run trains."""

    device: str = Field(description="'cpu' or 'cuda'.")
    precision: str = Field(description="Compute precision: fp32, bf16 (autocast) or fp16 (autocast + loss scaling).")
    base_dtype: str = Field(description="dtype the frozen base weights are loaded in.")
    quantization: str = Field(description="'none' or '4bit' (QLoRA).")
    device_name: str = Field(description="CPU or GPU model, for the record.")


def resolve_hardware(device: str, precision: str, quantization: str) -> Hardware:
    """Pick device and precision; ConfigError / MissingDependencyError for impossible requests.

    auto precision: bf16 where the hardware computes it natively (CUDA compute capability >= 8,
    or a CPU with AVX512-BF16/AMX), else fp32. fp16 is never chosen automatically. On CPU the
    base weights stay fp32 and bf16 runs as autocast; on CUDA they are loaded in the compute
    dtype (halving memory), LoRA weights stay fp32 (PEFT upcasts them).
    """
    import platform

    import torch

    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise ConfigError("device: cuda was asked for but no CUDA GPU is visible here; set device: auto or cpu")
    dev = "cuda" if (device == "auto" and cuda) or device == "cuda" else "cpu"
    if quantization == "4bit":
        if dev != "cuda":
            raise ConfigError("train.quantization: 4bit (QLoRA) needs a CUDA GPU with bitsandbytes, and this run is "
                              "on CPU. Set train.quantization=none to train a plain LoRA adapter (SmolLM2-sized "
                              "models fit on CPU), or run on a CUDA machine.")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise MissingDependencyError("QLoRA (train.quantization: 4bit)", "bitsandbytes")
    from tidekit.backends._hf import pick_dtype  # the same hardware rule generation uses

    bf16_ok = pick_dtype("auto", dev) == "bfloat16"
    if precision == "auto":
        chosen = "bf16" if bf16_ok else "fp32"
    elif precision == "bf16" and not bf16_ok:
        raise ConfigError(f"train.precision: bf16 is not supported by this {dev.upper()}; use precision: auto "
                          "(picks fp32 here)" + (" or fp16" if dev == "cuda" else ""))
    elif precision == "fp16" and dev != "cuda":
        raise ConfigError("train.precision: fp16 needs a CUDA GPU (CPU autocast supports bf16 only); "
                          "use precision: auto")
    else:
        chosen = precision
    base = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[chosen] if dev == "cuda" else "float32"
    name = torch.cuda.get_device_name(0) if dev == "cuda" else (platform.processor() or platform.machine())
    return Hardware(device=dev, precision=chosen, base_dtype=base, quantization=quantization, device_name=name)


def linear_module_names(model: Any) -> list[str]:
    """The distinct last-name components of the model's linear layers (what LoRA can target)."""
    import torch

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt")}
    return sorted(names)


def check_target_modules(model: Any, targets: list[str] | str) -> None:
    """ConfigError naming the unknown entries and the module names the model does have."""
    if targets == "all-linear":
        return
    available = linear_module_names(model)
    all_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    unknown = [t for t in targets if t not in all_names]
    if unknown:
        raise ConfigError(f"lora.target_modules: {', '.join(map(repr, unknown))} not found in "
                          f"{type(model).__name__}. Its linear layers are: {', '.join(available)} "
                          "(or use 'all-linear').")
    not_linear = [t for t in targets if t not in available]
    if not_linear:
        raise ConfigError(f"lora.target_modules: {', '.join(map(repr, not_linear))} are not linear layers; LoRA here "
                          f"targets linear layers: {', '.join(available)}.")


def check_target_modules_of(model: str, targets: list[str] | str) -> None:
    """:func:`check_target_modules` on the model's architecture built on the meta device (no
    weights read, no memory), so a wrong target fails before anything is loaded or deleted."""
    if targets == "all-linear":
        return
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_model_path(model)
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError):
        return  # the model load reports an unreadable model with its own message
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    check_target_modules(skeleton, targets)


def lora_layers(model: str, last_layers: int | None) -> list[int] | None:
    """The block indices ``lora.last_layers`` names (PEFT ``layers_to_transform``), read from the
    model's config (no weights); ConfigError when the model has fewer blocks. None: every block."""
    if last_layers is None:
        return None
    from transformers import AutoConfig

    path = resolve_model_path(model)
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"lora.last_layers: cannot read the config of {model} ({path}) to count its "
                          f"transformer blocks: {exc}") from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    depth = getattr(text, "num_hidden_layers", None)
    if not isinstance(depth, int):
        raise ConfigError(f"lora.last_layers: the config of {model} does not say how many transformer "
                          "blocks it has (num_hidden_layers); set last_layers: null to adapt every block")
    if last_layers > depth:
        raise ConfigError(f"lora.last_layers: {last_layers} is more than the {depth} transformer blocks "
                          f"of {model}; use at most {depth}, or null for every block")
    return list(range(depth - last_layers, depth))
