"""The batched decoding loop of the ``hf`` backend, and the CPU fast paths it runs on.

Why not ``model.generate``: on a 2-core CPU its per-step machinery (logits processors, stopping
criteria, cache bookkeeping, mask building) and unpacked bf16 weights cost more than the model's
arithmetic. This loop drives the forward passes itself:

- one batch per call; prefill computes logits for the last position only;
- each row carries its own limits (max new tokens, stop strings) and sampling settings, with a
  per-row ``torch.Generator`` so a sampled request's output depends on its seed only;
- finished rows are dropped from the batch and the key/value cache once enough have finished;
- the forward passes run on one of two engines: the lean forward of
  :mod:`tidekit.backends._lean` (Llama-family models on CPU: fused, pre-packed projections,
  length-grouped prefill, keys/values in preallocated buffers), or the transformers forward
  (other models, CUDA, ``optimize=false``) with a left-padded batch and a preallocated cache.
  On CPU in bf16, the latter gets :func:`pack_linear_weights`: every ``nn.Linear`` swapped for
  one whose weight is pre-packed once in oneDNN's blocked layout (the op ``torch.compile`` emits
  with weight freezing) instead of being re-laid out on every call, about 1.5x the GFLOP/s of
  ``F.linear`` on 64-row matmuls (see docs/generation.md).

Heavy imports (torch) happen inside functions; importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import torch

    from tidekit.backends._lean import LeanDecoder

__all__ = ["RowOutput", "RowSettings", "decode_batch", "onednn_packer", "pack_linear_weights"]


@dataclass(frozen=True)
class RowSettings:
    """How to decode one row of a batch."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class RowOutput:
    """What one row produced."""

    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: Literal["stop", "length"] = "length"


# called after each decoding step with (row index, token ids generated so far, finished?)
TokenCallback = Callable[[int, list[int], bool], None]


def onednn_packer() -> Callable[[torch.Tensor], Any] | None:
    """A function packing a bf16 weight for ``torch.ops.mkldnn._linear_pointwise``, or None.

    None when the op is missing, unsupported by this CPU, or gives a wrong answer.
    """
    import torch

    ops: Any = getattr(torch.ops, "mkldnn", None)
    if ops is None or not hasattr(ops, "_reorder_linear_weight") or not torch.backends.mkldnn.is_available():
        return None
    if not _packed_linear_is_exact(ops):
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


def _packed_linear_is_exact(ops: Any) -> bool:
    import torch

    try:
        with torch.inference_mode():
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(5, 64, generator=gen).bfloat16()
            w = torch.randn(48, 64, generator=gen).bfloat16()
            got = ops._linear_pointwise(x, ops._reorder_linear_weight(w, 64), None, "none", [], "")
            want = torch.nn.functional.linear(x, w)
            return bool(torch.allclose(got.float(), want.float(), atol=0.05, rtol=0.02))
    except RuntimeError:  # op present but unsupported on this CPU
        return False


def decode_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    settings: Sequence[RowSettings],
    eos_ids: set[int],
    pad_id: int,
    on_step: TokenCallback | None = None,
    preallocate: bool = True,
    lean: LeanDecoder | None = None,
) -> list[RowOutput]:
    """Generate a reply for each tokenised prompt in one left-padded batch.

    ``lean``: run the forward passes on this :class:`~tidekit.backends._lean.LeanDecoder` (built
    from ``model``) instead of the transformers forward. ``preallocate`` (transformers forward
    only): write keys/values into buffers sized for the whole reply instead of growing the cache
    by concatenation (a copy of the whole cache at every step).
    """
    import torch

    if not prompts:
        return []
    n = len(prompts)
    longest = max(s.max_new_tokens for s in settings)
    forward: _Forward = (_LeanForward(lean) if lean is not None
                         else _HFForward(model, pad_id, preallocate))
    generators = [
        torch.Generator(device="cpu").manual_seed(s.seed if s.seed is not None else 0) if s.temperature > 0 else None
        for s in settings
    ]
    outputs = [RowOutput() for _ in range(n)]
    rows = list(range(n))  # original row index of each row still in the batch tensors
    done = [False] * n
    with torch.inference_mode():
        logits = forward.prefill(prompts, longest)
        for _ in range(longest):
            chosen = _choose(logits, [settings[r] for r in rows], [generators[r] for r in rows])
            for j, token in enumerate(chosen.tolist()):
                r = rows[j]
                if done[r]:
                    continue
                out, spec = outputs[r], settings[r]
                if token in eos_ids:
                    out.finish_reason, done[r] = "stop", True
                else:
                    out.token_ids.append(token)
                    if spec.stop and _hit_stop(tokenizer, out, spec.stop):
                        out.finish_reason, done[r] = "stop", True
                    elif len(out.token_ids) >= spec.max_new_tokens:
                        out.finish_reason, done[r] = "length", True
                if on_step is not None:
                    on_step(r, out.token_ids, done[r])
            live = [j for j, r in enumerate(rows) if not done[r]]
            if not live:
                break
            if len(rows) - len(live) >= max(1, len(rows) // 4):  # compact: stop computing finished rows
                keep = torch.tensor(live, device=chosen.device)
                forward.select(keep)
                chosen = chosen[keep]
                rows = [rows[j] for j in live]
            logits = forward.step(chosen)
    for out, spec in zip(outputs, settings, strict=True):
        if not out.text:
            out.text = tokenizer.decode(out.token_ids, skip_special_tokens=True)
        if spec.stop:
            out.text = _cut_at_stop(out.text, spec.stop)
    return outputs


class _Forward(Protocol):
    """The model side of the decode loop: prefill, one step per token, dropping rows."""

    def prefill(self, prompts: Sequence[Sequence[int]], new_tokens: int) -> torch.Tensor: ...

    def step(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def select(self, keep: torch.Tensor) -> None: ...


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


class _LeanForward:
    def __init__(self, lean: LeanDecoder) -> None:
        self.lean = lean

    def prefill(self, prompts: Sequence[Sequence[int]], new_tokens: int) -> torch.Tensor:
        import torch

        width = max(len(p) for p in prompts)
        self.lean.allocate(len(prompts), width + new_tokens)
        self.positions = torch.tensor([len(p) for p in prompts], dtype=torch.long)  # of the next token
        return self.lean.prefill(prompts)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = self.lean.step(tokens, self.positions)
        self.positions = self.positions + 1
        return logits

    def select(self, keep: torch.Tensor) -> None:
        self.lean.select(keep)
        self.positions = self.positions[keep]


class _HFForward:
    def __init__(self, model: Any, pad_id: int, preallocate: bool) -> None:
        self.model, self.pad_id, self.preallocate = model, pad_id, preallocate
        self.device = next(model.parameters()).device

    def prefill(self, prompts: Sequence[Sequence[int]], new_tokens: int) -> torch.Tensor:
        from transformers import DynamicCache

        ids, mask = left_pad(prompts, self.pad_id)
        ids, self.mask = ids.to(self.device), mask.long().to(self.device)
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        self.cache = DynamicCache(config=self.model.config)
        if self.preallocate:
            _preallocate(self.cache, ids.shape[1] + new_tokens)
        self.last_pos = positions[:, -1]
        return self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions, cache=self.cache,
                          use_cache=True, logits_to_keep=1).logits[:, -1, :]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        self.last_pos = self.last_pos + 1
        return self.model(input_ids=tokens.view(-1, 1), attention_mask=self.mask,
                          position_ids=self.last_pos.view(-1, 1), cache=self.cache,
                          use_cache=True).logits[:, -1, :]

    def select(self, keep: torch.Tensor) -> None:
        self.cache.batch_select_indices(keep)
        self.mask, self.last_pos = self.mask[keep], self.last_pos[keep]


def _preallocate(cache: Any, capacity: int) -> None:
    """Swap the cache's full-attention layers for ones writing into preallocated buffers."""
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        length = 0

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                batch, heads, _, dim = key_states.shape
                self.device = key_states.device
                self.k_buf = key_states.new_empty((batch, heads, capacity, dim))
                self.v_buf = value_states.new_empty((batch, value_states.shape[1], capacity, value_states.shape[3]))
                self.is_initialized = True
            n = key_states.shape[-2]
            self.k_buf[:, :, self.length:self.length + n].copy_(key_states)
            self.v_buf[:, :, self.length:self.length + n].copy_(value_states)
            self.length += n
            self.keys, self.values = self.k_buf[:, :, :self.length], self.v_buf[:, :, :self.length]
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.is_initialized:
                self.k_buf, self.v_buf = self.k_buf[indices], self.v_buf[indices]
                self.keys, self.values = self.k_buf[:, :, :self.length], self.v_buf[:, :, :self.length]

    layers = getattr(cache, "layers", None)
    if not layers:
        return
    for i, layer in enumerate(layers):
        if type(layer) is DynamicLayer:
            layers[i] = PreallocatedLayer()


def _choose(logits: torch.Tensor, settings: Sequence[RowSettings],
            generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """Next token of each row: argmax for greedy rows, seeded nucleus sampling for the others."""
    import torch

    chosen = logits.argmax(dim=-1)
    sampled = [j for j, s in enumerate(settings) if s.temperature > 0]
    if not sampled:
        return chosen
    chosen = chosen.cpu()
    for j in sampled:
        spec, gen = settings[j], generators[j]
        probs = torch.softmax(logits[j].float().cpu() / spec.temperature, dim=-1)
        if spec.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            cut = sorted_probs.cumsum(0) - sorted_probs > spec.top_p  # keep the smallest set reaching top_p
            sorted_probs[cut] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        chosen[j] = torch.multinomial(probs, 1, generator=gen)[0]
    return chosen.to(logits.device)


def _hit_stop(tokenizer: Any, out: RowOutput, stop: Sequence[str]) -> bool:
    text = tokenizer.decode(out.token_ids, skip_special_tokens=True)
    if any(s in text for s in stop):
        out.text = _cut_at_stop(text, stop)
        return True
    return False


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]
