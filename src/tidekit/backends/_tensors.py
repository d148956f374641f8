"""Tensor helpers shared by the ``hf`` decoding loop (``_decode``) and the lean forward (``_lean``).

They live apart from both so that neither imports the other for them: ``_lean`` builds on these
helpers, ``_decode`` drives ``_lean``. Heavy imports (torch) happen inside functions; importing
this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["attention_shape", "left_pad", "onednn_packer", "pack_linear_weights", "right_pad"]


def onednn_packer(dtype: torch.dtype | None = None) -> Callable[[torch.Tensor], Any] | None:
    """A function packing a weight of ``dtype`` (bf16 unless given; fp32 too) for
    ``torch.ops.mkldnn._linear_pointwise``, or None.

    None when the op is missing, unsupported by this CPU, or gives a wrong answer. In fp32 a packed
    product sums in another order than MKL's, so it differs from ``F.linear`` by float rounding
    (~1e-5 relative); its blocked layout streams the weights of the decode steps' skinny matmuls
    1.6-2.7x faster on an AVX2 CPU (docs/benchmarks.md, "Quickstart profile after the CPU work").
    """
    import torch

    dtype = dtype or torch.bfloat16
    ops: Any = getattr(torch.ops, "mkldnn", None)
    if ops is None or not hasattr(ops, "_reorder_linear_weight") or not torch.backends.mkldnn.is_available():
        return None
    if dtype not in (torch.bfloat16, torch.float32) or not _packed_linear_is_exact(ops, dtype):
        return None
    return lambda weight: ops._reorder_linear_weight(weight.detach(), 64)


def pack_linear_weights(model: Any) -> int:
    """Replace each ``nn.Linear`` of ``model`` (CPU, bf16) by a oneDNN pre-packed linear.

    Returns how many were replaced (0 when the op is unavailable or gives a wrong answer, in
    which case the model is left untouched).
    """
    import torch

    maybe_packer = onednn_packer()
    if maybe_packer is None:
        return 0
    packer = maybe_packer
    ops: Any = torch.ops.mkldnn

    class PackedLinear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear) -> None:
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            # a packed copy; the original (possibly tied) parameter stays where it was
            self.packed = packer(linear.weight)
            self.bias = None if linear.bias is None else linear.bias.detach()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            flat = x.reshape(-1, shape[-1])
            if not flat.is_contiguous():
                flat = flat.contiguous()
            out = ops._linear_pointwise(flat, self.packed, self.bias, "none", [], "")
            return out.view(*shape[:-1], self.out_features)

    replaced = 0
    with torch.inference_mode():
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if type(child) is torch.nn.Linear and child.weight.dtype == torch.bfloat16:
                    setattr(module, name, PackedLinear(child))
                    replaced += 1
    return replaced


def _packed_linear_is_exact(ops: Any, dtype: torch.dtype) -> bool:
    """Whether the packed product equals ``F.linear`` to the rounding of ``dtype``."""
    import torch

    atol, rtol = (0.05, 0.02) if dtype == torch.bfloat16 else (1e-4, 1e-4)
    try:
        with torch.inference_mode():
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(5, 64, generator=gen).to(dtype)
            w = torch.randn(48, 64, generator=gen).to(dtype)
            got = ops._linear_pointwise(x, ops._reorder_linear_weight(w, 64), None, "none", [], "")
            want = torch.nn.functional.linear(x, w)
            return bool(torch.allclose(got.float(), want.float(), atol=atol, rtol=rtol))
    except RuntimeError:  # op present but unsupported on this CPU
        return False


def attention_shape(config: Any) -> tuple[int, int, int]:
    """(query heads, key/value heads, head dim) of a transformers decoder config."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return heads, kv_heads, getattr(config, "head_dim", None) or config.hidden_size // heads


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [rows, longest] left-padded with ``pad_id``, and the bool mask of real tokens."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
        mask[i, width - len(prompt):] = True
    return ids, mask


def right_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [rows, longest] right-padded with ``pad_id`` (each prompt from column 0), and
    the bool mask of real tokens: the layout of the lean forward's batch-invariant mode."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for i, prompt in enumerate(prompts):
        ids[i, :len(prompt)] = torch.tensor(list(prompt), dtype=torch.long)
        mask[i, :len(prompt)] = True
    return ids, mask
