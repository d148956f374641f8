"""Reuse the frozen blocks' output while adapters train on the last blocks only.

With ``lora.last_layers`` the blocks below the adapters have no trainable weight and, without
dropout, compute the same thing for an example every time it comes round: each epoch, and the
final validation pass after the first. :class:`FrozenBlocksCache` stores each example's output of
those blocks the first time a batch computes it, keyed by the example's tokens, and serves later
batches that hold only known examples from the store instead of running the blocks again. The
batches the trainer builds still go through the model as before (TRL's collator, the adapters,
the loss); only the frozen blocks' forward is skipped.

Why it is exact: TRL's collator pads on the right and positions count from 0, and attention is
causal, so a real token's output of the frozen blocks depends only on its own example's tokens,
not on the batch it is in or on the padding after it. Padding positions get zeros instead (they
carry no label, and no real token attends to them). Float rounding can differ in the last bits
between batch shapes, as it does between any two batchings.

It stays out of the way (the blocks run as usual, nothing is stored) for a batch it cannot prove
this for: padding-free packing (``cu_seq_lens`` or positions that do not count from 0), left
padding, inputs passed as embeddings, or hidden states that need a gradient. It is not set up at
all when a frozen block holds a trainable weight or dropout, or with gradient checkpointing.
Memory: an example costs its length x the hidden size in the model's dtype (SmolLM2, 448 tokens:
1 MB), on the model's device; past :data:`BUDGET_BYTES` new examples are computed as usual and not
stored. While it is entered, the first frozen block runs them all and the others pass their input
through, so per-block hidden states (``output_hidden_states``) of the frozen blocks are not theirs;
tidekit's training asks for none.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["BUDGET_BYTES", "FrozenBlocksCache", "frozen_blocks"]

BUDGET_BYTES = 1 << 30  # 1 GiB of stored block outputs at most


def frozen_blocks(model: Any, adapted: list[int] | None) -> tuple[Any, list[Any]] | None:
    """The decoder (the module whose ``layers`` are the blocks) and its blocks below the lowest
    adapted one, if they can be cached: no trainable weight and no active dropout in them."""
    import torch

    if not adapted or min(adapted) == 0:
        return None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(base, "model", None)
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) <= min(adapted):
        return None
    blocks = list(layers[: min(adapted)])
    for block in blocks:
        if any(p.requires_grad for p in block.parameters()):
            return None
        if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in block.modules()):
            return None
    if float(getattr(getattr(base, "config", None), "attention_dropout", 0.0) or 0.0) > 0:
        return None
    return decoder, blocks


class FrozenBlocksCache:
    """While entered, the frozen ``blocks`` of ``decoder`` run once per distinct example (see the module)."""

    def __init__(self, decoder: Any, blocks: list[Any], budget_bytes: int = BUDGET_BYTES) -> None:
        self.decoder = decoder
        self.blocks = blocks
        self.budget_bytes = budget_bytes
        self.store: dict[bytes, torch.Tensor] = {}
        self.stored_bytes = 0
        self.served = 0  # examples whose block output came from the store
        self.computed = 0  # examples the blocks ran for
        self._batch: tuple[Any, Any, Any] | None = None  # input_ids, attention_mask, position_ids
        self._hook: Any = None

    # ---- set-up -----------------------------------------------------------------------------------
    def __enter__(self) -> FrozenBlocksCache:
        originals = [block.forward for block in self.blocks]

        def run_blocks(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            return self._run(originals, hidden_states, args, kwargs)

        self.blocks[0].forward = run_blocks
        for block in self.blocks[1:]:
            block.forward = _passthrough
        self._hook = self.decoder.register_forward_pre_hook(self._capture, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        for block in self.blocks:
            block.__dict__.pop("forward", None)  # the class's forward again
        if self._hook is not None:
            self._hook.remove()
        self.store.clear()

    def _capture(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        packed = any(key.startswith("cu_seq_lens") for key in kwargs)
        self._batch = None if ids is None or packed else (ids, kwargs.get("attention_mask"),
                                                          kwargs.get("position_ids"))

    # ---- the forward ------------------------------------------------------------------------------
    def _keys(self, hidden_states: torch.Tensor) -> list[tuple[bytes, int]] | None:
        """Each row's key (its tokens) and length, or None when this batch cannot be served."""
        import torch

        if self._batch is None or hidden_states.requires_grad:
            return None
        ids, mask, positions = self._batch
        if ids.dim() != 2 or ids.shape[:2] != hidden_states.shape[:2]:
            return None
        b, width = ids.shape
        mask = torch.ones_like(ids) if mask is None else mask
        if mask.dim() != 2:
            return None
        lengths = mask.long().sum(-1)
        order = torch.arange(width, device=ids.device)
        real = order[None, :] < lengths[:, None]  # what a right-padded mask of these lengths is
        if not bool((mask.bool() == real).all()):
            return None  # not right-padded
        if positions is not None and not bool(((positions.expand(b, width) == order[None, :]) | ~real).all()):
            return None  # positions that do not count from 0
        ids_cpu, lengths_cpu = ids.detach().cpu(), lengths.cpu().tolist()
        return [(hashlib.blake2b(ids_cpu[r, :n].numpy().tobytes(), digest_size=16).digest(), n)
                for r, n in enumerate(lengths_cpu)]

    def _run(self, originals: list[Any], hidden_states: torch.Tensor, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> torch.Tensor:
        keys = self._keys(hidden_states)
        if keys is not None and all(key in self.store for key, _ in keys):
            out = hidden_states.new_zeros(hidden_states.shape)
            for r, (key, n) in enumerate(keys):
                out[r, :n] = self.store[key]
            self.served += len(keys)
            return out
        h = hidden_states
        for forward in originals:
            h = forward(h, *args, **kwargs)
        self.computed += h.shape[0]
        if keys is not None:
            for r, (key, n) in enumerate(keys):
                size = n * h.shape[-1] * h.element_size()
                if key not in self.store and self.stored_bytes + size <= self.budget_bytes:
                    self.store[key] = h[r, :n].detach().clone()
                    self.stored_bytes += size
        return h


def _passthrough(hidden_states: torch.Tensor, *_args: Any, **_kwargs: Any) -> torch.Tensor:
    return hidden_states
