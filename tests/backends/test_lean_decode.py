"""The lean CPU forward pass (backends/_lean.py) against the transformers forward it replaces.

In fp32 both run the same arithmetic, so logits must agree to float rounding and greedy tokens
exactly; in bf16 the fused, pre-packed matmuls round differently, so only closeness is asked.
Real SmolLM2 (Llama architecture) and a small random Qwen2 (q/k/v biases, grouped keys).
"""

from __future__ import annotations

from typing import Any

import pytest

from tidekit.backends import BackendConfig, load_backend
from tidekit.backends._decode import RowSettings, _HFForward, decode_batch
from tidekit.backends._lean import (
    PREFILL_TOKENS,
    SHARED_PREFIX_MIN,
    LeanDecoder,
    lean_decoder_for,
    prefill_groups,
    shared_prefix_length,
)
from tidekit.data import Message

torch = pytest.importorskip("torch")

TEXTS = ["I can't sleep since the accident.", "Loud noises make me panic, every single time, even at home.",
         "My sister says I should be over it.", "I keep checking the locks, again and again, before bed.",
         "Work feels impossible.", "Crowds make my chest tight and I have to leave the shop right away."]


def _prompts(backend: Any) -> list[list[int]]:
    return [backend.encode([Message(role="user", content=t)]) for t in TEXTS]


def _compare_logits(model: Any, lean: LeanDecoder, prompts: list[list[int]], pad_id: int, steps: int) -> float:
    """Largest |logit difference| over a prefill and ``steps`` greedy steps fed the same tokens."""
    hf = _HFForward(model, pad_id, preallocate=True)
    lean.allocate(len(prompts), max(map(len, prompts)) + steps)
    positions = torch.tensor([len(p) for p in prompts])
    with torch.inference_mode():
        want, got = hf.prefill(prompts, steps).float(), lean.prefill(prompts).float()
        worst = (want - got).abs().max().item()
        for _ in range(steps):
            tokens = want.argmax(-1)
            want, got = hf.step(tokens).float(), lean.step(tokens, positions).float()
            positions = positions + 1
            worst = max(worst, (want - got).abs().max().item())
    return worst


@pytest.mark.slow
def test_fp32_lean_matches_transformers_on_smollm2() -> None:
    backend = load_backend(BackendConfig(model="smollm2-135m", dtype="float32", optimize=False))
    try:
        lean = lean_decoder_for(backend.model)
        assert lean is not None and lean.packed == 0  # fp32: plain fused matmuls, nothing packed
        prompts = _prompts(backend)
        assert _compare_logits(backend.model, lean, prompts, backend.pad_id, steps=6) < 1e-3
        settings = [RowSettings(max_new_tokens=n) for n in (12, 3, 12, 7, 12, 1)]  # rows finish early
        want = decode_batch(backend.model, backend.tokenizer, prompts, settings, backend.eos_ids, backend.pad_id)
        got = decode_batch(backend.model, backend.tokenizer, prompts, settings, backend.eos_ids, backend.pad_id,
                           lean=lean)
        assert [o.token_ids for o in got] == [o.token_ids for o in want]
        assert [len(o.token_ids) for o in got] == [12, 3, 12, 7, 12, 1]
    finally:
        backend.close()


@pytest.mark.slow
def test_bf16_lean_agrees_with_transformers_to_rounding() -> None:
    backend = load_backend(BackendConfig(model="smollm2-135m", dtype="bfloat16", optimize=False))
    try:
        lean = lean_decoder_for(backend.model)
        assert lean is not None
        prompts = _prompts(backend)
        # logits reach ~30; a bf16 ulp there is 0.125, and fused/packed matmuls round differently
        assert _compare_logits(backend.model, lean, prompts, backend.pad_id, steps=3) < 2.0
        # greedy choices agree, except where transformers itself sees a near-tie
        lean.allocate(len(prompts), max(map(len, prompts)) + 1)
        with torch.inference_mode():
            want = _HFForward(backend.model, backend.pad_id, preallocate=True).prefill(prompts, 1).float()
            chosen = lean.prefill(prompts).float().argmax(-1)
        picked = want.gather(1, chosen.view(-1, 1)).squeeze(1)
        assert (picked >= want.max(-1).values - 0.5).all()
        assert (chosen == want.argmax(-1)).sum().item() >= len(prompts) - 2
    finally:
        backend.close()


def test_qwen2_with_biases_and_grouped_heads_matches_transformers() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256)
    model = Qwen2ForCausalLM(config).eval()
    assert model.model.layers[0].self_attn.q_proj.bias is not None
    lean = lean_decoder_for(model)
    assert lean is not None and lean.group == 4
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 256, (n,), generator=gen).tolist() for n in (5, 17, 9, 30)]
    assert _compare_logits(model, lean, prompts, pad_id=0, steps=5) < 1e-4


def test_a_shared_prefix_computed_once_gives_the_logits_of_whole_prompts() -> None:
    """A judge's rubric or a teacher's instructions: every prompt starts with the same tokens."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=512)
    model = Qwen2ForCausalLM(config).eval()
    lean = lean_decoder_for(model)
    assert lean is not None
    gen = torch.Generator().manual_seed(2)
    shared = torch.randint(1, 256, (SHARED_PREFIX_MIN + 25,), generator=gen).tolist()
    prompts = [shared + torch.randint(1, 256, (n,), generator=gen).tolist() for n in (1, 19, 7, 40, 3)]
    assert shared_prefix_length(prompts) >= len(shared)
    assert _compare_logits(model, lean, prompts, pad_id=0, steps=5) < 1e-4
    assert lean.shared_prefix >= len(shared)  # the shared path ran
    # and it agrees with prefilling every row whole
    lean.allocate(len(prompts), max(map(len, prompts)) + 1)
    with torch.inference_mode():
        once = lean.prefill(prompts).float()
        lean.allocate(len(prompts), max(map(len, prompts)) + 1)
        whole = lean.prefill(prompts, share_prefix=False).float()
    assert lean.shared_prefix == 0 and (once - whole).abs().max().item() < 1e-4


def test_shared_prefix_length_leaves_every_row_a_token_of_its_own() -> None:
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 9]]) == 2
    assert shared_prefix_length([[5, 2], [1, 2]]) == 0
    assert shared_prefix_length([[1, 2, 3]]) == 0  # one row: nothing to share


def test_unsupported_models_fall_back_to_transformers() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64))
    assert lean_decoder_for(gpt2) is None
    sliding = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=48,
                                           num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                           use_sliding_window=True, sliding_window=16))
    assert lean_decoder_for(sliding) is None


def test_take_weights_frees_the_models_projection_weights() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
    before = sum(p.numel() for p in model.parameters())
    lean = lean_decoder_for(model, take_weights=True)
    assert lean is not None
    left = sum(p.numel() for p in model.parameters())
    projections = 2 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 48)
    assert before - left == projections
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8]]
    lean.allocate(2, 8)
    with torch.inference_mode():
        assert lean.prefill(prompts).shape == (2, 64)  # still decodes from its own copies


def test_prefill_groups_cover_every_row_once_within_the_token_budget() -> None:
    lengths = [30, 5, 900, 64, 64, 7, 3000, 12] * 8
    groups = prefill_groups(lengths)
    assert sorted(r for g in groups for r in g) == list(range(len(lengths)))
    flat = [lengths[r] for g in groups for r in g]
    assert flat == sorted(flat)  # ascending length, so padding stays small
    for g in groups:
        padded = len(g) * max(lengths[r] for r in g)
        assert padded <= PREFILL_TOKENS or len(g) == 1  # a prompt longer than the budget goes alone
    assert [len(g) for g in groups if max(lengths[r] for r in g) == 3000] == [1] * 8
