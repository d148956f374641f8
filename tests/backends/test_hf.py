"""The hf backend on the real SmolLM2: chat template, fast path equals plain transformers,
LoRA adapters, context limits, system-role folding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
from tidekit.backends._hf import fold_system
from tidekit.data import Message


def _req(i: int, text: str, **params: Any) -> ChatRequest:
    return ChatRequest(id=str(i), messages=[Message(role="system", content="You are a supportive listener."),
                                            Message(role="user", content=text)],
                       params=GenerationParams(**{"max_new_tokens": 10, **params}))


REQUESTS = [_req(0, "I can't sleep since the accident."), _req(1, "Loud noises make me panic, every time.")]


def test_fold_system_for_templates_without_a_system_role() -> None:
    msgs = [Message(role="system", content="S"), Message(role="user", content="U"),
            Message(role="assistant", content="A"), Message(role="user", content="V")]
    assert fold_system(msgs) == [{"role": "user", "content": "S\n\nU"}, {"role": "assistant", "content": "A"},
                                 {"role": "user", "content": "V"}]


@pytest.fixture(scope="module")
def smollm() -> Iterator[Any]:
    backend = load_backend(BackendConfig(model="smollm2-135m", batch_size=8))
    yield backend
    backend.close()


@pytest.mark.slow
def test_fast_path_matches_plain_transformers_generate(smollm: Any) -> None:
    import torch

    # one prompt at a time on both sides: in bf16, batch composition (padding, matmul shapes)
    # moves logits by rounding noise, which can flip a near-tie greedy choice. The batch-invariant
    # mode (backend.reproducible, the default) pads attention to a fixed key grid, which rounds
    # differently from transformers in bf16: the fused forward itself is compared here, with it off.
    if smollm.dtype == "bfloat16":
        smollm = load_backend(BackendConfig(model="smollm2-135m", batch_size=8, reproducible=False))
    results = [smollm.generate([request])[0] for request in REQUESTS]
    assert smollm.dtype in ("bfloat16", "float32")
    if smollm.dtype == "bfloat16":
        # the lean path: 4 fused matmuls (qkv, o, gate_up, down) in each of the 30 blocks + lm_head
        assert smollm.lean is not None and smollm.packed == 4 * 30 + 1
    # the reference: plain transformers generate, one prompt at a time, unpacked weights
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(smollm.identity.source, dtype=getattr(torch, smollm.dtype))
    for request, result in zip(REQUESTS, results, strict=True):
        ids = torch.tensor([smollm.encode(request.messages)])
        with torch.inference_mode():
            out = plain.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False,
                                 pad_token_id=smollm.pad_id)
        want = smollm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        assert result.text == want
        assert result.completion_tokens == 10 and result.finish_reason == "length"
        assert result.prompt_tokens == ids.shape[1]


@pytest.mark.slow
def test_sampling_is_seeded_per_request(smollm: Any) -> None:
    a = _req(0, "Tell me something kind.", temperature=1.0, seed=11)
    b = _req(0, "Tell me something kind.", temperature=1.0, seed=12)
    first = smollm.generate([a, b])
    again = smollm.generate([a, b])
    assert [r.text for r in first] == [r.text for r in again]  # reproducible
    assert first[0].text != first[1].text  # each request has its own random stream


@pytest.mark.slow
def test_prompt_longer_than_context_is_a_request_error(smollm: Any) -> None:
    long = _req(0, "word " * 9000)
    result = smollm.generate([long, REQUESTS[0]])
    assert result[0].error is not None and "exceeds the model's context of 8192" in result[0].error
    assert result[1].text


@pytest.mark.slow
def test_stop_strings_cut_the_reply(smollm: Any) -> None:
    free = smollm.generate([REQUESTS[0]])[0].text
    word = free.split()[2]
    stopped = smollm.generate([_req(0, REQUESTS[0].messages[1].content, stop=[word])])[0]
    assert stopped.text == free[: free.index(word)] and stopped.finish_reason == "stop"


@pytest.mark.slow
def test_lora_adapter_changes_outputs_and_identity(smollm: Any, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(smollm.identity.source)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    tuned = load_backend(BackendConfig(model="smollm2-135m", adapter=str(tmp_path / "adapter")))
    try:
        assert tuned.identity.revision is not None and "adapter=" in tuned.identity.revision
        assert tuned.identity != smollm.identity
        assert tuned.generate(REQUESTS[:1])[0].text != smollm.generate(REQUESTS[:1])[0].text
    finally:
        tuned.close()


def test_not_an_adapter_folder_is_a_clear_error(tmp_path: Path) -> None:
    from tidekit.errors import BackendError

    with pytest.raises(BackendError, match="not a LoRA adapter folder"):
        load_backend(BackendConfig(model="smollm2-135m", adapter=str(tmp_path)))


@pytest.mark.slow
def test_batches_too_big_for_the_kv_budget_are_decoded_in_parts(smollm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import tidekit.backends._hf as hf

    # SmolLM2: 2 x 30 layers x 3 heads x 64 dims x 4 bytes = 46,080 bytes per position: the
    # batch-invariant mode (the default) keeps an fp32 cache; the batch-dependent one the model's dtype
    assert smollm.config.reproducible and smollm.lean is not None
    assert smollm.kv_bytes_per_token == 2 * 30 * 3 * 64 * 4
    requests = [_req(i, text) for i, text in enumerate(["I can't sleep.", "Noises scare me.", "I feel numb.",
                                                         "Crowds are hard."])]
    positions = max(len(smollm.encode(r.messages)) for r in requests) + 10
    sizes: list[int] = []
    real = hf.decode_batch

    def counting(*args: Any, **kwargs: Any) -> Any:
        sizes.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(hf, "decode_batch", counting)
    whole = smollm.generate(requests)
    assert sizes == [4]  # the default 4 GiB holds them all
    sizes.clear()
    # room for two rows of this batch's longest prompt + reply, not three
    monkeypatch.setattr(smollm.config, "kv_cache_gib", 2.5 * positions * smollm.kv_bytes_per_token / 2**30)
    parts = smollm.generate(requests)
    assert sizes == [2, 2]
    assert [r.id for r in parts] == [r.id for r in whole] and all(r.text and r.error is None for r in parts)


def test_decode_batches_keep_rows_of_one_grammar_together(smollm: Any) -> None:
    """Jump-forward needs every row of a batch at a forced run: requests are grouped by their
    response schema (free text apart) before the batches are cut, in request order within each."""
    from tidekit.backends._protocol import ResponseFormat

    def fmt(order: list[str]) -> ResponseFormat:
        return ResponseFormat(name="v", json_schema={"type": "object", "properties": {k: {"type": "integer"}
                                                                                       for k in order},
                                                     "required": order})

    kinds = [fmt(["a", "b"]), fmt(["b", "a"]), None, fmt(["a", "b"]), None, fmt(["b", "a"])]
    requests = [ChatRequest(id=str(i), messages=[Message(role="user", content="hi")], response_format=f)
                for i, f in enumerate(kinds)]
    todo = [(i, [1, 2, 3]) for i in range(len(requests))]
    parts = smollm._parts(todo, requests)
    assert [[i for i, _ in part] for part in parts] == [[0, 3], [1, 5], [2, 4]]
    off = load_backend(BackendConfig(model="smollm2-135m", jump_forward=False, optimize=False, reproducible=False))
    try:
        assert [[i for i, _ in part] for part in off._parts(todo, requests)] == [[0, 1, 2, 3, 4, 5]]
        # the transformers forward has no batch-invariant mode: reproducible decodes one request a pass
        off.config = off.config.model_copy(update={"reproducible": True})
        assert [[i for i, _ in part] for part in off._parts(todo, requests)] == [[i] for i in range(6)]
    finally:
        off.close()


@pytest.mark.slow
def test_greedy_outputs_do_not_depend_on_the_batch_in_bf16(smollm: Any) -> None:
    """backend.reproducible (the default): a request's greedy reply is the same bits alone, in a
    batch of 16, in batches of 3 and among the first 5 (a --limit run), in bf16 with the lean
    forward. Before the batch-invariant mode, 12 of 16 (first 16 of 64) and 27 of 64 (batches of
    8) matched on this kind of CPU (issue #30). Runs only where the CPU has native bf16: in fp32 the
    batch dependence this guards against did not show."""
    if smollm.dtype != "bfloat16":
        pytest.skip("this CPU has no native bf16 (auto picked float32); the batch dependence shows in bf16")
    from tidekit.data import load_dataset
    from tidekit.generation import DEFAULT_SYSTEM_PROMPT, conversation_messages

    sample = Path(__file__).parents[2] / "src" / "tidekit" / "sample" / "tide"
    conversations = sorted(load_dataset(sample).conversations, key=lambda c: c.id)[:16]
    requests = [ChatRequest(id=c.id, messages=conversation_messages(c, DEFAULT_SYSTEM_PROMPT),
                            params=GenerationParams(max_new_tokens=24)) for c in conversations]
    assert smollm.capabilities.batch_invariant and smollm.lean.aligned
    whole = [r.text for r in smollm.generate(requests)]
    threes = [r.text for start in range(0, 16, 3) for r in smollm.generate(requests[start:start + 3])]
    first = [r.text for r in smollm.generate(requests[:5])]
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # and with another number of threads (a Ray replica may have fewer)
    try:
        alone = [smollm.generate([r])[0].text for r in requests[:2]]
    finally:
        torch.set_num_threads(threads)
    assert threes == whole
    assert first == whole[:5]
    assert alone == whole[:2]
