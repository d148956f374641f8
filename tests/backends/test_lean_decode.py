"""The lean CPU forward pass (backends/_lean.py) against the transformers forward it replaces.

In fp32 both run the same arithmetic up to summation order (the pre-packed oneDNN matmuls add in
another order than MKL), so logits must agree to float rounding and greedy tokens exactly; in bf16
they round differently, so only closeness is asked.
Real SmolLM2 (Llama architecture) and a small random Qwen2 (q/k/v biases, grouped keys).
Jump-forward (several grammar-forced tokens per ``extend`` pass) against a step per token: the
same outputs, fewer forward passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tidekit.backends import BackendConfig, load_backend
from tidekit.backends._decode import RowOutput, RowSettings, _HFForward, _LeanForward, decode_batch
from tidekit.backends._lean import (
    PREFILL_TOKENS,
    SHARED_PREFIX_MIN,
    LeanDecoder,
    lean_decoder_for,
    prefill_groups,
    prefix_clusters,
    shared_prefix_length,
)
from tidekit.backends._tensors import onednn_packer
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
        assert lean is not None
        # fp32 weights are pre-packed too where oneDNN packs them exactly (4 fused matmuls x 30 blocks + head)
        assert lean.packed == (4 * 30 + 1 if onednn_packer(torch.float32) is not None else 0)
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
    model = _tiny_qwen2()
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


def test_prompt_families_each_compute_their_own_prefix_once_with_the_logits_of_whole_prompts() -> None:
    """A judge's rubric beside its reversed-order probe, a teacher's prompts per persona: rows
    share a short prefix overall and long ones within families."""
    model = _tiny_qwen2()
    lean = lean_decoder_for(model)
    assert lean is not None
    gen = torch.Generator().manual_seed(3)

    def tokens(n: int) -> list[int]:
        return torch.randint(1, 256, (n,), generator=gen).tolist()

    head = tokens(SHARED_PREFIX_MIN + 4)  # every row: a prefix computed once for the whole batch
    rubric, probe = [*head, 7, *tokens(50)], [*head, 9, *tokens(60)]
    prompts = [rubric + tokens(n) for n in (3, 11, 6)] + [probe + tokens(n) for n in (5, 1)] + [head + tokens(20)]
    for cut in (0, len(head)):  # with and without a prefix shared by every row
        batch = [p[cut:] for p in prompts]
        lean.allocate(len(batch), max(map(len, batch)) + 1)
        with torch.inference_mode():
            once = lean.prefill(batch).float()
            families, shared = sorted(lean.cluster_prefixes), lean.shared_prefix
            lean.allocate(len(batch), max(map(len, batch)) + 1)
            whole = lean.prefill(batch, share_prefix=False).float()
        assert (once - whole).abs().max().item() < 1e-4
        assert shared == len(head) - cut
        assert families == sorted([(3, len(rubric) - cut), (2, len(probe) - cut)])
    assert _compare_logits(model, lean, prompts, pad_id=0, steps=4) < 1e-4  # decoding after it too


def test_prefix_clusters_cut_where_the_most_tokens_are_saved() -> None:
    m = SHARED_PREFIX_MIN
    a, b = list(range(1, m + 41)), list(range(100, 100 + m + 10))
    rows = [[*a, 1], [*b, 2], [*a, 3, 4], [*b, 5], [250, 251]]
    got = {tuple(sorted(r)): n for r, n in prefix_clusters(rows)}
    assert got == {(0, 2): len(a), (1, 3): len(b), (4,): 0}
    rows = [[*a, 1], [*a, 2], [7, *b], [8, *b], [9, 1]]  # two families and rows sharing nothing
    assert prefix_clusters(rows) == [([0, 1], len(a)), ([2, 3, 4], 0)]
    # a longer prefix for two rows beats a shorter one for three, and each row keeps a token of its own
    rows = [[*a, 1], [*a, 1], [*a[:m], 9]]
    assert sorted(prefix_clusters(rows)) == sorted([([0, 1], len(a)), ([2], 0)])
    assert prefix_clusters([a, a]) == [([0, 1], len(a) - 1)]
    # above a prefix every row shares, only the extension counts; rows gaining nothing stay one group
    assert prefix_clusters([[*a, 1], [*a, 2], [*a, 3]], base=len(a)) == [([0, 1, 2], len(a))]
    assert prefix_clusters([a]) == [([0], 0)]


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


# ---- jump-forward over grammar-forced tokens ------------------------------------------------------

def _tiny_qwen2() -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256)
    return Qwen2ForCausalLM(config).eval()


def _extend_vs_steps(lean: LeanDecoder, prompts: list[list[int]], tokens: Any) -> float:
    """Largest |logit difference| between ``extend(tokens)`` and a step per token, and between
    the steps after each (so the extended keys/values are checked too)."""
    k = tokens.shape[1]
    positions = torch.tensor([len(p) for p in prompts])
    with torch.inference_mode():
        lean.allocate(len(prompts), max(map(len, prompts)) + k + 1)
        lean.prefill(prompts)
        for i in range(k):
            stepped = lean.step(tokens[:, i], positions + i)
        after_steps = lean.step(tokens[:, 0], positions + k)
        lean.allocate(len(prompts), max(map(len, prompts)) + k + 1)
        lean.prefill(prompts)
        extended = lean.extend(tokens, positions)
        after_extend = lean.step(tokens[:, 0], positions + k)
    return max((stepped - extended).abs().max().item(), (after_steps - after_extend).abs().max().item())


def test_extend_equals_steps_with_grouped_heads_and_refuses_past_capacity() -> None:
    lean = lean_decoder_for(_tiny_qwen2())
    assert lean is not None and lean.group == 4
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(1, 256, (n,), generator=gen).tolist() for n in (5, 17, 9)]
    assert _extend_vs_steps(lean, prompts, torch.randint(1, 256, (3, 6), generator=gen)) < 1e-4
    lean.allocate(3, 17 + 2)
    with torch.inference_mode():
        lean.prefill(prompts)
        with pytest.raises(RuntimeError, match="capacity"):
            lean.extend(torch.ones((3, 3), dtype=torch.long), torch.tensor([5, 17, 9]))


class _Scripted:
    """A forcing constraint that allows ``allowed[i]`` at position i (the last set repeats)."""

    def __init__(self, allowed: list[set[int]]) -> None:
        self.allowed, self.at = allowed, 0

    def _now(self, at: int) -> set[int]:
        return self.allowed[min(at, len(self.allowed) - 1)]

    def fill(self, bitmask: Any, index: int) -> None:
        bitmask[index] = 0
        for token in self._now(self.at):
            bitmask[index, token // 32] |= (1 << (token % 32)) if token % 32 < 31 else -(1 << 31)

    def accept(self, token: int) -> bool:
        ok = token in self._now(self.at)
        self.at += 1
        return ok

    def forced(self) -> list[int]:
        run: list[int] = []
        while len(self._now(self.at + len(run))) == 1 and len(run) < 50:
            run.append(next(iter(self._now(self.at + len(run)))))
        return run

    def consume_tokens(self, tokens: list[int]) -> bool:
        return all(self.accept(t) for t in tokens)


class _Digits:
    """A tokenizer stand-in for stop strings: token t is written as its number."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(map(str, ids))


def _decode_both_ways(model: Any, lean: LeanDecoder, tokenizer: Any, prompts: list[list[int]],
                      settings: Any, eos_ids: set[int], monkeypatch: pytest.MonkeyPatch,
                      ) -> tuple[dict[bool, list[RowOutput]], dict[bool, list[Any]], dict[bool, dict[str, int]]]:
    """``settings()`` (fresh constraints each time) decoded with jump_forward on and off: the
    outputs, the ``on_step`` calls and the lean forward's ``step``/``extend`` calls of each."""
    outs, steps, calls = {}, {}, {}
    for jump in (True, False):
        seen: list[Any] = []
        counts = {"step": 0, "extend": 0}
        for name in counts:
            original = getattr(_LeanForward, name)

            def counted(self: Any, tokens: Any, _name: str = name, _original: Any = original,
                        _counts: dict[str, int] = counts) -> Any:
                _counts[_name] += 1
                return _original(self, tokens)

            monkeypatch.setattr(_LeanForward, name, counted)

        def on_step(r: int, ids: list[int], done: bool, _seen: list[Any] = seen) -> None:
            _seen.append((r, tuple(ids), done))

        outs[jump] = decode_batch(model, tokenizer, prompts, settings(), eos_ids, 0, lean=lean, jump_forward=jump,
                                  on_step=on_step)
        monkeypatch.undo()
        steps[jump], calls[jump] = seen, counts
    return outs, steps, calls


def _assert_same(a: list[RowOutput], b: list[RowOutput], tol: float) -> None:
    for x, y in zip(a, b, strict=True):
        assert (x.token_ids, x.text, x.finish_reason) == (y.token_ids, y.text, y.finish_reason)
        assert len(x.logprobs) == len(y.logprobs)
        for (lp, top), (want_lp, want_top) in zip(x.logprobs, y.logprobs, strict=True):
            assert lp == pytest.approx(want_lp, abs=tol)
            assert [t for t, _ in top] == [t for t, _ in want_top]
            assert [v for _, v in top] == pytest.approx([v for _, v in want_top], abs=tol)


def test_jump_forward_gives_a_step_per_token_outputs_with_stops_limits_and_sampling(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of forced tokens cut short by a stop string, max_new_tokens, an eos token and a
    choice; sampled rows keep their seeded draws (a jump advances their generators too)."""
    model = _tiny_qwen2()
    lean = lean_decoder_for(model)
    assert lean is not None
    gen = torch.Generator().manual_seed(4)
    prompts = [torch.randint(1, 256, (n,), generator=gen).tolist() for n in (6, 11, 4, 9)]
    choice = set(range(100, 140))
    script = [{7}, {8}, {9}, choice, {10}, {11}, {12}, {13}, choice, choice, {14}, {15}, {5}, choice]

    def settings() -> list[RowSettings]:
        return [RowSettings(max_new_tokens=30, constraint=_Scripted(script), logprobs=3),
                RowSettings(max_new_tokens=30, constraint=_Scripted(script), stop=("11 12",), logprobs=2),
                RowSettings(max_new_tokens=6, constraint=_Scripted(script), temperature=0.9, seed=1),
                RowSettings(max_new_tokens=30, constraint=_Scripted(script), temperature=1.0, top_p=0.9,
                            seed=2, logprobs=4)]

    outs, steps, calls = _decode_both_ways(model, lean, _Digits(), prompts, settings, {5}, monkeypatch)
    _assert_same(outs[True], outs[False], tol=1e-4)
    assert steps[True] == steps[False]  # the same on_step calls, in the same order
    assert outs[True][0].token_ids[:3] == [7, 8, 9] and outs[True][0].finish_reason == "stop"  # at eos 5
    stopped = outs[True][1]  # stopped by "11 12" in the middle of a run of forced tokens
    assert stopped.token_ids[4:] == [10, 11, 12] and stopped.text == f"7 8 9 {stopped.token_ids[3]} 10 "
    assert len(outs[True][2].token_ids) == 6 and outs[True][2].finish_reason == "length"
    assert outs[True][0].logprobs[4] == (0.0, [(10, 0.0)])  # a forced token's entry, as a step records it
    assert calls[True]["extend"] >= 2 and calls[False]["extend"] == 0
    assert calls[True]["step"] + calls[True]["extend"] < calls[False]["step"]


@pytest.fixture(scope="module")
def smollm2_fp32() -> Iterator[Any]:
    backend: Any = load_backend(BackendConfig(model="smollm2-135m", dtype="float32"))
    assert backend.lean is not None
    yield backend
    backend.close()


@pytest.mark.slow
def test_extend_equals_steps_on_smollm2(smollm2_fp32: Any) -> None:
    prompts = _prompts(smollm2_fp32)
    tokens = torch.tensor([smollm2_fp32.tokenizer.encode('{"emotion_recognition": ')[:7]] * len(prompts))
    assert tokens.shape[1] == 7
    assert _extend_vs_steps(smollm2_fp32.lean, prompts, tokens) < 1e-4


@pytest.mark.slow
def test_judge_verdicts_with_and_without_jump_forward_on_smollm2(smollm2_fp32: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The judge's own requests: rubric prompts, the verdict schema, its top_logprobs, greedy."""
    from tidekit.backends._constrain import GrammarConstraints
    from tidekit.data import load_dataset, sample_path
    from tidekit.metrics import JudgeOptions
    from tidekit.metrics._rubric import build_rubric, verdict_schema

    backend = smollm2_fp32
    rubric, options = build_rubric(), JudgeOptions()
    convs = [c for c in load_dataset(sample_path()).conversations if c.reference][:3]
    prompts = [backend.encode(rubric.messages(c.client_text, c.reference or "")) for c in convs]
    grammars = GrammarConstraints(backend.tokenizer, int(backend.model.config.vocab_size), backend.eos_ids)

    def settings() -> list[RowSettings]:
        return [RowSettings(max_new_tokens=options.max_new_tokens, temperature=options.temperature,
                            constraint=grammars.for_schema(verdict_schema()), logprobs=options.top_logprobs)
                for _ in prompts]

    outs, steps, calls = _decode_both_ways(backend.model, backend.lean, backend.tokenizer, prompts, settings,
                                           backend.eos_ids, monkeypatch)
    _assert_same(outs[True], outs[False], tol=1e-4)
    assert steps[True] == steps[False]
    assert all(o.finish_reason == "stop" and o.text.startswith('{"emotion_recognition": ') for o in outs[True])
    # ~36 tokens, 4 of them choices: a step each without jumping, a handful of passes with it
    assert calls[False] == {"step": len(outs[False][0].token_ids), "extend": 0}
    assert calls[True]["extend"] >= 4 and calls[True]["step"] + calls[True]["extend"] <= 8


@pytest.mark.slow
def test_a_free_row_in_the_batch_means_no_jumps_on_smollm2(smollm2_fp32: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tidekit.backends._constrain import GrammarConstraints
    from tidekit.metrics._rubric import verdict_schema

    backend = smollm2_fp32
    prompts = _prompts(backend)[:2]
    grammars = GrammarConstraints(backend.tokenizer, int(backend.model.config.vocab_size), backend.eos_ids)

    def settings() -> list[RowSettings]:
        return [RowSettings(max_new_tokens=40, constraint=grammars.for_schema(verdict_schema()), logprobs=3),
                RowSettings(max_new_tokens=40, logprobs=3)]  # still decoding when the verdict ends

    outs, steps, calls = _decode_both_ways(backend.model, backend.lean, backend.tokenizer, prompts, settings,
                                           backend.eos_ids, monkeypatch)
    _assert_same(outs[True], outs[False], tol=1e-4)
    assert steps[True] == steps[False]
    assert calls[True]["extend"] == 0  # a free row never has forced tokens
    assert outs[True][0].text.startswith('{"emotion_recognition": ') and len(outs[True][1].token_ids) == 40


def test_batch_invariant_mode_matches_transformers_and_gives_each_row_its_own_bits() -> None:
    """aligned=True (backend.reproducible): right-padded rows at their own slots, a fixed slot
    grid, a lone row run with a twin. fp32: the logits of transformers (correctness of the layout);
    bf16: each row's logits over a prefill and steps are the same bits alone, in the whole batch
    and in another batch (the property; on the real SmolLM2: tests/backends/test_hf.py)."""
    model = _tiny_qwen2()
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 256, (n,), generator=gen).tolist() for n in (5, 17, 9, 30, 33, 64)]
    lean = lean_decoder_for(model, aligned=True)
    assert lean is not None and lean.aligned
    assert _compare_logits(model, lean, prompts, pad_id=0, steps=5) < 1e-4
    bf16 = lean_decoder_for(model.to(torch.bfloat16), aligned=True)
    assert bf16 is not None

    def run(rows: list[list[int]], steps: int = 6) -> Any:
        bf16.allocate(len(rows), max(map(len, rows)) + steps)
        positions = torch.tensor([len(p) for p in rows])
        out = []
        with torch.inference_mode():
            logits = bf16.prefill(rows)
            for t in range(steps):
                out.append(logits)
                logits = bf16.step(torch.full((len(rows),), 7 + t), positions)
                positions = positions + 1
        return torch.stack(out, dim=1)  # [rows, steps, vocab]

    whole = run(prompts)
    assert torch.equal(run(prompts[:1])[0], whole[0])
    assert torch.equal(run([prompts[4], prompts[1]])[1], whole[1])
    assert torch.equal(run(prompts[3:])[0], whole[3])
