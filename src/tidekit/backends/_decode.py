"""The batched decoding loop of the ``hf`` backend, and the CPU fast paths it runs on.

Why not ``model.generate``: on a 2-core CPU its per-step machinery (logits processors, stopping
criteria, cache bookkeeping, mask building) and unpacked bf16 weights cost more than the model's
arithmetic. This loop drives the forward passes itself:

- one batch per call; prefill computes logits for the last position only;
- each row carries its own limits (max new tokens, stop strings) and sampling settings, with a
  per-row ``torch.Generator`` so a sampled request's output depends on its seed only;
- finished rows are dropped from the batch and the key/value cache once enough have finished;
- a row may carry a :class:`TokenConstraint` (constrained decoding: the tokens its grammar
  forbids are masked out of the logits before the choice) and ask for the most likely tokens
  at each position (log-probabilities, e.g. for probability-weighted judge scores);
- jump-forward (lean forward only): when every live row's grammar forces its next tokens (a
  JSON verdict's keys, quotes and punctuation: ~32 of its ~36 tokens), they are appended
  without a step each and fed to the model with the step's chosen token in one
  ``LeanDecoder.extend`` pass, with the outputs a step per token would give;
- the forward passes run on one of two engines: the lean forward of
  :mod:`tidekit.backends._lean` (Llama-family models on CPU: fused, pre-packed projections,
  length-grouped prefill, keys/values in preallocated buffers), or the transformers forward
  (other models, CUDA, ``optimize=false``) with a left-padded batch and a preallocated cache.
  On CPU in bf16, the latter gets :func:`~tidekit.backends._tensors.pack_linear_weights`: every ``nn.Linear`` swapped for
  one whose weight is pre-packed once in oneDNN's blocked layout (the op ``torch.compile`` emits
  with weight freezing) instead of being re-laid out on every call, about 1.5x the GFLOP/s of
  ``F.linear`` on 64-row matmuls (see docs/generation.md).

Heavy imports (torch) happen inside functions; importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from tidekit.backends._lean import LeanDecoder

from tidekit.backends._tensors import left_pad

__all__ = ["ForcingConstraint", "RowOutput", "RowSettings", "TokenConstraint", "decode_batch"]


@dataclass(frozen=True)
class RowSettings:
    """How to decode one row of a batch."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    constraint: TokenConstraint | None = None  # allowed tokens at each step (constrained decoding)
    logprobs: int = 0  # record this many most likely tokens at each step


class TokenConstraint(Protocol):
    """Which tokens may come next in one row (a grammar matcher, see ``_constrain.py``).

    Optional capability: a constraint that also has ``forced`` and ``consume_tokens`` (a
    :class:`ForcingConstraint`) lets the lean forward jump over the tokens it forces; a row whose
    constraint lacks them is decoded a step per token, and so is every row of its batch.
    """

    def fill(self, bitmask: torch.Tensor, index: int) -> None:
        """Write the allowed next tokens into row ``index`` of a packed int32 ``bitmask``."""
        ...

    def accept(self, token: int) -> bool:
        """Advance past ``token``; False when the grammar does not allow it."""
        ...


@runtime_checkable
class ForcingConstraint(TokenConstraint, Protocol):
    """A :class:`TokenConstraint` that can say which tokens it forces (jump-forward decoding)."""

    def forced(self) -> list[int]:
        """The tokens that must come next, in order, each the only one :meth:`fill` would allow
        at its position (so a step would choose it whatever the logits); the state is unchanged."""
        ...

    def consume_tokens(self, tokens: list[int]) -> bool:
        """Advance past ``tokens``; False when the grammar does not allow them."""
        ...


@dataclass
class RowOutput:
    """What one row produced."""

    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: Literal["stop", "length", "cancelled"] = "length"
    # per generated token: (logprob, [(token id, logprob) of the most likely tokens there])
    logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)


# called after each decoding step with (row index, token ids generated so far, finished?)
TokenCallback = Callable[[int, list[int], bool], None]
# asked after each decoding step of every live row: True drops the row (a server's client left)
CancelCheck = Callable[[int], bool]


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
    share_prefix: bool = True,
    jump_forward: bool = True,
    cancelled: CancelCheck | None = None,
) -> list[RowOutput]:
    """Generate a reply for each tokenised prompt in one left-padded batch.

    ``lean``: run the forward passes on this :class:`~tidekit.backends._lean.LeanDecoder` (built
    from ``model``) instead of the transformers forward. ``preallocate`` (transformers forward
    only): write keys/values into buffers sized for the whole reply instead of growing the cache
    by concatenation (a copy of the whole cache at every step). ``share_prefix`` (lean forward
    only): prefill a prefix all prompts share once (see ``LeanDecoder.prefill``). ``jump_forward``
    (lean forward only): when every live row's constraint forces its next tokens, append the
    fewest any row has (:func:`_forced_run`) after the step's chosen token and feed them all in
    one ``LeanDecoder.extend`` pass instead of a step each. The outputs are those of a step per
    token: the same token ids, ``logprobs`` entries (0.0, only the token in the top list: a mask
    that allows one token gives exactly that), ``on_step`` calls and finish reasons, and each
    sampled row's generator advanced as a step would advance it.

    ``cancelled`` (``tidekit serve``): asked after each step for every live row; a row it says
    True for ends there with ``finish_reason == "cancelled"`` and leaves the batch as finished
    rows do (the last one left ends the loop), so an abandoned request stops costing compute at
    the next step. It never changes the other rows' tokens.
    """
    import torch

    if not prompts:
        return []
    n = len(prompts)
    longest = max(s.max_new_tokens for s in settings)
    forward: _Forward = (_LeanForward(lean, share_prefix) if lean is not None
                         else _HFForward(model, pad_id, preallocate))
    # the transformers forward has no extend: it decodes a step per token
    extender = forward if jump_forward and isinstance(forward, _LeanForward) else None
    forcing = [s.constraint if extender is not None and isinstance(s.constraint, ForcingConstraint) else None
               for s in settings]
    generators = [
        torch.Generator(device="cpu").manual_seed(s.seed if s.seed is not None else 0) if s.temperature > 0 else None
        for s in settings
    ]
    outputs = [RowOutput() for _ in range(n)]
    rows = list(range(n))  # original row index of each row still in the batch tensors
    done = [False] * n
    constrained = any(s.constraint is not None for s in settings)
    want_logprobs = any(s.logprobs for s in settings)
    with torch.inference_mode():
        logits = forward.prefill(prompts, longest)
        vocab = logits.shape[-1]
        for _ in range(longest):
            if constrained:
                logits = _mask_disallowed(logits, [None if done[r] else settings[r].constraint for r in rows])
            chosen = _choose(logits, [settings[r] for r in rows], [generators[r] for r in rows])
            top = _top_logprobs(logits, chosen, [settings[r].logprobs for r in rows]) if want_logprobs else {}
            for j, token in enumerate(chosen.tolist()):
                r = rows[j]
                if done[r]:
                    continue
                out, spec = outputs[r], settings[r]
                if token in eos_ids:
                    out.finish_reason, done[r] = "stop", True
                elif spec.constraint is not None and not spec.constraint.accept(token):
                    out.finish_reason, done[r] = "stop", True  # unreachable with a mask; never emit it
                else:
                    done[r] = _emit(out, spec, token, top.get(j), tokenizer)
                if on_step is not None:
                    on_step(r, out.token_ids, done[r])
            runs = _forced_run(rows, done, forcing, outputs, settings, eos_ids) if extender is not None else None
            if runs is not None:
                _append_forced(runs, rows, done, outputs, settings, generators, vocab, tokenizer, on_step)
            if cancelled is not None:
                _drop_cancelled(rows, done, outputs, cancelled)
            live = [j for j, r in enumerate(rows) if not done[r]]
            if not live:
                break
            fed = None  # with a jump: the chosen token, then the forced ones (a finished row's: any)
            if runs is not None:
                filler = [0] * len(next(iter(runs.values())))
                fed = torch.cat([chosen.view(-1, 1).cpu(),
                                 torch.tensor([runs.get(j, filler) for j in range(len(rows))])], dim=1)
            if len(rows) - len(live) >= max(1, len(rows) // 4):  # compact: stop computing finished rows
                keep = torch.tensor(live, device=chosen.device)
                forward.select(keep)
                chosen = chosen[keep]
                fed = fed[keep.cpu()] if fed is not None else None
                rows = [rows[j] for j in live]
            if fed is None:
                logits = forward.step(chosen)
            else:
                assert extender is not None  # a jump is only planned with an extending forward
                logits = extender.extend(fed)
    for out, spec in zip(outputs, settings, strict=True):
        if not out.text:
            out.text = tokenizer.decode(out.token_ids, skip_special_tokens=True)
        if spec.stop:
            out.text = _cut_at_stop(out.text, spec.stop)
    return outputs


def _drop_cancelled(rows: Sequence[int], done: list[bool], outputs: Sequence[RowOutput],
                    cancelled: CancelCheck) -> None:
    """Mark the live rows ``cancelled`` names as finished ("cancelled")."""
    for r in rows:
        if not done[r] and cancelled(r):
            outputs[r].finish_reason, done[r] = "cancelled", True


class _Forward(Protocol):
    """The model side of the decode loop: prefill, one step per token, dropping rows."""

    def prefill(self, prompts: Sequence[Sequence[int]], new_tokens: int) -> torch.Tensor: ...

    def step(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def select(self, keep: torch.Tensor) -> None: ...


class _LeanForward:
    def __init__(self, lean: LeanDecoder, share_prefix: bool = True) -> None:
        self.lean, self.share_prefix = lean, share_prefix

    def prefill(self, prompts: Sequence[Sequence[int]], new_tokens: int) -> torch.Tensor:
        import torch

        width = max(len(p) for p in prompts)
        self.lean.allocate(len(prompts), width + new_tokens)
        self.positions = torch.tensor([len(p) for p in prompts], dtype=torch.long)  # of the next token
        return self.lean.prefill(prompts, share_prefix=self.share_prefix)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = self.lean.step(tokens, self.positions)
        self.positions = self.positions + 1
        return logits

    def extend(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed ``tokens`` [batch, k] in one pass; the logits after the last of them."""
        logits = self.lean.extend(tokens, self.positions)
        self.positions = self.positions + tokens.shape[1]
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


def _forced_run(rows: Sequence[int], done: Sequence[bool], forcing: Sequence[ForcingConstraint | None],
                outputs: Sequence[RowOutput], settings: Sequence[RowSettings],
                eos_ids: set[int]) -> dict[int, list[int]] | None:
    """Batch row -> the tokens to append without a step each, the same number for every live row;
    None when some live row has none (a free row, a choice to make, its length limit reached).

    A run stops before an end-of-sequence token (the loop's own handling of it applies) and
    where the row would pass its ``max_new_tokens``; its tokens are consumed by the rows'
    constraints here.
    """
    found: list[tuple[int, ForcingConstraint, list[int]]] = []
    for j, r in enumerate(rows):
        if done[r]:
            continue
        constraint = forcing[r]
        if constraint is None:
            return None
        tokens = constraint.forced()[: settings[r].max_new_tokens - len(outputs[r].token_ids)]
        cut = next((i for i, t in enumerate(tokens) if t in eos_ids), len(tokens))
        if cut == 0:
            return None
        found.append((j, constraint, tokens[:cut]))
    if not found:
        return None
    k = min(len(tokens) for _, _, tokens in found)
    for _, constraint, tokens in found:
        if not constraint.consume_tokens(tokens[:k]):
            raise RuntimeError(f"the grammar refused the tokens it forced: {tokens[:k]}")
    return {j: tokens[:k] for j, _, tokens in found}


def _append_forced(runs: dict[int, list[int]], rows: Sequence[int], done: list[bool], outputs: Sequence[RowOutput],
                   settings: Sequence[RowSettings], generators: Sequence[torch.Generator | None], vocab: int,
                   tokenizer: Any, on_step: TokenCallback | None) -> None:
    """Append forced tokens to their rows as a step per token would have: position by position,
    row by row, with its logprobs entry, stop-string and length check and ``on_step`` call."""
    import torch

    for i in range(len(next(iter(runs.values())))):
        for j, tokens in runs.items():
            r = rows[j]
            if done[r]:  # a stop string or the length limit ended it earlier in the run
                continue
            out, spec, token = outputs[r], settings[r], tokens[i]
            generator = generators[r]
            if generator is not None:  # a step samples from the one-hot distribution the mask leaves
                only = torch.zeros(vocab)
                only[token] = 1.0
                sample(only, generator)
            done[r] = _emit(out, spec, token, (0.0, [(token, 0.0)]) if spec.logprobs else None, tokenizer)
            if on_step is not None:
                on_step(r, out.token_ids, done[r])


def _emit(out: RowOutput, spec: RowSettings, token: int, logprob: tuple[float, list[tuple[int, float]]] | None,
          tokenizer: Any) -> bool:
    """Append an accepted ``token`` (and its logprobs entry) to ``out``; True when that ends the
    row (a stop string or the length limit), with ``out.finish_reason`` set."""
    out.token_ids.append(token)
    if logprob is not None:
        out.logprobs.append(logprob)
    if spec.stop and _hit_stop(tokenizer, out, spec.stop):
        out.finish_reason = "stop"
    elif len(out.token_ids) >= spec.max_new_tokens:
        out.finish_reason = "length"
    else:
        return False
    return True


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
            probs = nucleus(probs, spec.top_p)
        chosen[j] = sample(probs, gen)
    return chosen.to(logits.device)


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """A token drawn from ``probs`` (1-D, non-negative, not necessarily normalised) by inverting
    its cumulative distribution at one uniform number from ``generator``.

    One number a token, whatever the vocabulary: ``torch.multinomial`` draws an exponential for
    every vocabulary entry (49,152 for SmolLM2, 1.5 ms a token, a tenth of a sampled build). A
    token of zero probability is never drawn: the first index whose cumulative mass exceeds
    ``u x total`` has mass of its own.
    """
    import torch

    cumulative = probs.cumsum(0)
    u = torch.rand((), generator=generator, dtype=cumulative.dtype)
    index = int(torch.searchsorted(cumulative, u * cumulative[-1], right=True))
    return min(index, probs.numel() - 1)


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """``probs`` (1-D) with every token outside the top-p nucleus set to zero: the smallest set of
    most likely tokens whose mass reaches ``top_p``.

    Sorting the whole vocabulary for every sampled token was the largest cost of a sampled batch
    (4.4 ms for SmolLM2's 49,152 tokens, a fifth of the quickstart build). Only tokens above a
    threshold ``t`` are sorted, when their mass ``S`` exceeds ``top_p``: every token below ``t``
    comes after all of them in the full order, with at least ``S`` before it, so the full sort
    would cut it too and the nucleus is the same. ``t = (1 - top_p) / (2 V)`` always qualifies
    (the tokens below it hold under ``(1 - top_p) / 2``); a larger first try sorts fewer. Sorts
    are stable, so equally likely tokens at the nucleus's edge are kept in token-id order.
    """
    import torch

    vocab = probs.numel()
    for threshold in (1e-4, (1.0 - top_p) / (2 * vocab)):
        candidates = (probs >= threshold).nonzero().view(-1)
        if 0 < candidates.numel() < vocab:
            sub = probs[candidates]
            kept, order = sub.sort(descending=True, stable=True)
            before = kept.cumsum(0) - kept
            if float(before[-1] + kept[-1]) > top_p + 1e-6:  # the nucleus ends inside the candidates
                kept[before > top_p] = 0.0
                return torch.zeros_like(probs).index_put_((candidates[order],), kept)
    kept, order = probs.sort(descending=True, stable=True)
    kept[kept.cumsum(0) - kept > top_p] = 0.0  # keep the smallest set reaching top_p
    return torch.zeros_like(probs).scatter_(0, order, kept)


def _mask_disallowed(logits: torch.Tensor, constraints: Sequence[TokenConstraint | None]) -> torch.Tensor:
    """``logits`` with every token a row's constraint forbids set to -inf (other rows untouched).

    The constraint packs allowed tokens into an int32 bitmask (32 tokens a word, the layout
    llguidance and xgrammar fill); numpy's ``unpackbits`` turns it into a boolean mask in one C
    pass, with no per-token Python work.
    """
    import numpy as np
    import torch

    idx = [j for j, c in enumerate(constraints) if c is not None]
    if not idx:
        return logits
    vocab = logits.shape[-1]
    bitmask = torch.zeros((len(idx), (vocab + 31) // 32), dtype=torch.int32)
    for k, j in enumerate(idx):
        constraints[j].fill(bitmask, k)  # type: ignore[union-attr]
    bits = np.unpackbits(bitmask.numpy().view(np.uint8), axis=1, bitorder="little")[:, :vocab]
    forbidden = torch.from_numpy(bits == 0).to(logits.device)
    if len(idx) == logits.shape[0]:
        return logits.masked_fill(forbidden, float("-inf"))
    rows = torch.tensor(idx, device=logits.device)
    logits = logits.clone()
    logits[rows] = logits[rows].masked_fill(forbidden, float("-inf"))
    return logits


def _top_logprobs(logits: torch.Tensor, chosen: torch.Tensor,
                  wanted: Sequence[int]) -> dict[int, tuple[float, list[tuple[int, float]]]]:
    """Batch row -> (log-probability of its chosen token, its ``wanted`` most likely tokens)."""
    import torch

    idx = [j for j, k in enumerate(wanted) if k]
    if not idx:
        return {}
    rows = torch.tensor(idx, device=logits.device)
    every = len(idx) == logits.shape[0]
    sub = (logits if every else logits[rows]).float()
    # logprob = logit - logsumexp: no full-vocabulary log-softmax tensor is written
    norm = torch.logsumexp(sub, dim=-1)
    picked = (sub.gather(1, (chosen if every else chosen[rows]).to(logits.device).view(-1, 1)).view(-1)
              - norm).tolist()
    values, ids = sub.topk(max(wanted[j] for j in idx), dim=-1)
    values = values - norm[:, None]
    out = {}
    for k, j in enumerate(idx):
        n = wanted[j]
        out[j] = (picked[k], [(int(t), float(v)) for t, v in zip(ids[k, :n].tolist(), values[k, :n].tolist(),
                                                                  strict=True) if v != float("-inf")])
    return out


def _hit_stop(tokenizer: Any, out: RowOutput, stop: Sequence[str]) -> bool:
    text = tokenizer.decode(out.token_ids, skip_special_tokens=True)
    if any(s in text for s in stop):
        out.text = _cut_at_stop(text, stop)
        return True
    return False


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]
