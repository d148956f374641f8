"""Top-p sampling sorts only the likely tokens, and keeps exactly the nucleus a full sort keeps."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tidekit.backends import BackendConfig, _decode, load_backend
from tidekit.backends._protocol import ChatRequest, GenerationParams
from tidekit.data import Message


def _full_sort(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The definition: sort every token, keep the smallest most-likely set whose mass reaches top_p."""
    kept, order = probs.sort(descending=True, stable=True)
    kept[kept.cumsum(0) - kept > top_p] = 0.0
    return torch.zeros_like(probs).scatter_(0, order, kept)


@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0, 8.0, 30.0])
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95, 0.99])
def test_nucleus_equals_a_full_sort_with_ties_masks_and_flat_distributions(scale: float, top_p: float) -> None:
    vocab = 49_152
    for seed in range(12):
        gen = torch.Generator().manual_seed(seed)
        logits = torch.randn(vocab, generator=gen) * scale
        if seed % 3 == 0:
            logits[:200] = logits[:200].round()  # exact ties, some at the nucleus's edge
        if seed % 4 == 1:
            logits[torch.rand(vocab, generator=gen) < 0.7] = float("-inf")  # a grammar mask
        if seed == 5:
            logits[:] = 0.0  # uniform: no token above the first threshold
        probs = torch.softmax(logits, dim=-1)
        got = _decode.nucleus(probs.clone(), top_p)
        assert torch.equal(got, _full_sort(probs.clone(), top_p)), (scale, top_p, seed)
        assert float(got.sum()) >= top_p - 1e-5


def test_nucleus_of_a_one_hot_distribution_is_that_token() -> None:
    probs = torch.zeros(1000)
    probs[17] = 1.0
    assert torch.equal(_decode.nucleus(probs.clone(), 0.9), probs)


@pytest.mark.slow
def test_seeded_sampling_on_smollm2_is_unchanged_by_the_partial_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same seeded replies, token for token, with the partial sort and with a full sort."""
    backend: Any = load_backend(BackendConfig(model="smollm2-135m", dtype="float32", batch_size=8))
    try:
        requests = [ChatRequest(id=str(i), messages=[Message(role="user", content=text)],
                                params=GenerationParams(max_new_tokens=24, temperature=0.8, top_p=0.95, seed=i))
                    for i, text in enumerate(["I keep waking up at 3am and I can't get back to sleep.",
                                              "Since the accident I avoid driving past that junction.",
                                              "Everyone says I should be over it by now.",
                                              "I don't know why I survived when he didn't."])]
        fast = [r.text for r in backend.generate(requests)]
        monkeypatch.setattr(_decode, "nucleus", _full_sort)
        full = [r.text for r in backend.generate(requests)]
    finally:
        backend.close()
    assert fast == full
    assert len(set(fast)) == len(fast) and all(fast)


def test_sample_draws_each_token_at_its_probability_and_never_a_zero_one() -> None:
    """Inverse-CDF draws from one uniform a token: frequencies match (chi-square, fixed seed),
    tokens of zero probability never come up, unnormalised input is fine, and a seed repeats."""
    from scipy.stats import chisquare

    probs = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.25, 0.05, 0.0])
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    counts = torch.zeros(len(probs))
    for _ in range(n):
        counts[_decode.sample(probs * 3.0, gen)] += 1
    assert counts[probs == 0].sum() == 0
    live = probs > 0
    assert chisquare(counts[live].numpy(), (probs[live] * n).numpy()).pvalue > 0.01
    draws = [[_decode.sample(probs, torch.Generator().manual_seed(s)) for s in range(50)] for _ in range(2)]
    assert draws[0] == draws[1]
    edge = torch.zeros(5)
    edge[4] = 1.0  # the last token alone: u x total never reaches past it
    assert {_decode.sample(edge, torch.Generator().manual_seed(s)) for s in range(20)} == {4}
