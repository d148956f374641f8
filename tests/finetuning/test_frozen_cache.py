"""The frozen-blocks cache: the same loss and adapter gradients as running every block, with the
frozen blocks run once per distinct example; batches it cannot prove that for run as usual."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")


def _lora_model(layers: int = 4, adapted: tuple[int, ...] = (2, 3), seed: int = 0) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         attention_dropout=0.0, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(config)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"],
                      layers_to_transform=list(adapted), init_lora_weights=False, task_type="CAUSAL_LM")
    peft = get_peft_model(model, lora)
    peft.train()
    return peft


def _batch(rows: list[list[int]]) -> dict[str, Any]:
    """Right-padded like TRL's collator: labels -100 on padding."""
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


EXAMPLES = [[5, 9, 17, 3, 44, 8, 90, 12], [7, 7, 21, 64], [100, 2, 33, 1, 9, 9], [11, 12, 13, 14, 15, 16, 17]]


def _loss_and_grads(model: Any, batch: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_served_batches_give_the_same_loss_and_adapter_gradients() -> None:
    from tidekit.finetuning._frozen import FrozenBlocksCache, frozen_blocks

    plain, cached = _lora_model(), _lora_model()
    first, second = _batch([EXAMPLES[0], EXAMPLES[1]]), _batch([EXAMPLES[1], EXAMPLES[0]])  # new composition, padding
    found = frozen_blocks(cached, [2, 3])
    assert found is not None and len(found[1]) == 2
    with FrozenBlocksCache(*found) as cache:
        for batch in (first, second, first):
            loss, grads = _loss_and_grads(cached, batch)
            want_loss, want = _loss_and_grads(plain, batch)
            assert loss == pytest.approx(want_loss, rel=1e-5)
            assert grads.keys() == want.keys() and grads
            for name in want:
                assert torch.allclose(grads[name], want[name], rtol=1e-4, atol=1e-6), name
        assert (cache.computed, cache.served) == (2, 4)  # both examples computed once, then served
        assert len(cache.store) == 2
    # leaving restores the blocks: the model runs every block again
    assert "forward" not in found[1][0].__dict__
    loss, _ = _loss_and_grads(cached, first)
    assert loss == pytest.approx(_loss_and_grads(plain, first)[0], rel=1e-5)


def test_a_batch_with_a_new_example_runs_the_blocks_and_stores_it() -> None:
    from tidekit.finetuning._frozen import FrozenBlocksCache, frozen_blocks

    model = _lora_model()
    with FrozenBlocksCache(*frozen_blocks(model, [2, 3])) as cache:  # type: ignore[misc]
        model(**_batch(EXAMPLES[:2]))
        model(**_batch([EXAMPLES[0], EXAMPLES[2]]))  # one known, one new: the whole batch runs
        assert (cache.computed, cache.served, len(cache.store)) == (4, 0, 3)
        with torch.no_grad():  # evaluation mode serves as well
            model.eval()
            model(**_batch([EXAMPLES[2], EXAMPLES[1]]))
        assert cache.served == 2


def test_batches_it_cannot_prove_exact_run_as_usual() -> None:
    from tidekit.finetuning._frozen import FrozenBlocksCache, frozen_blocks

    model = _lora_model()
    left = _batch(EXAMPLES[:2])
    left["input_ids"] = left["input_ids"].flip(-1)  # left padding
    left["attention_mask"] = left["attention_mask"].flip(-1)
    packed = _batch([EXAMPLES[0] + EXAMPLES[1]])
    packed["position_ids"] = torch.tensor([list(range(8)) + list(range(4))])  # two packed sequences
    with FrozenBlocksCache(*frozen_blocks(model, [2, 3])) as cache:  # type: ignore[misc]
        for batch in (left, left, packed, packed):
            model(**batch)
        embeds = model.get_base_model().model.embed_tokens(torch.tensor([EXAMPLES[3]]))
        model(inputs_embeds=embeds, labels=torch.tensor([EXAMPLES[3]]))
        assert cache.served == 0 and not cache.store and cache.computed == 7  # rows: 2 + 2 + 1 + 1 + 1


def test_not_set_up_where_it_would_not_be_exact() -> None:
    from tidekit.finetuning._frozen import frozen_blocks

    assert frozen_blocks(_lora_model(), None) is None  # adapters on every block
    assert frozen_blocks(_lora_model(adapted=(0, 3)), [0, 3]) is None  # nothing below the lowest
    dropout = _lora_model()
    dropout.get_base_model().config.attention_dropout = 0.1
    assert frozen_blocks(dropout, [2, 3]) is None
    trainable = _lora_model()
    next(trainable.get_base_model().model.layers[0].parameters()).requires_grad_(True)
    assert frozen_blocks(trainable, [2, 3]) is None


def test_the_budget_bounds_what_is_stored() -> None:
    from tidekit.finetuning._frozen import FrozenBlocksCache, frozen_blocks

    model = _lora_model()
    one_example = len(EXAMPLES[0]) * 32 * 4  # tokens x hidden size x fp32
    with FrozenBlocksCache(*frozen_blocks(model, [2, 3]), budget_bytes=one_example) as cache:  # type: ignore[misc]
        model(**_batch(EXAMPLES[:2]))
        assert len(cache.store) == 1 and cache.stored_bytes <= one_example
        model(**_batch(EXAMPLES[:2]))  # the unstored one makes the batch run again
        assert cache.served == 0 and cache.computed == 4
