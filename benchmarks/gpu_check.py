"""GPU check: the generation engine on CUDA, with SmolLM2-135M and a random ~0.5B Qwen2 model.

Run on a machine with an NVIDIA GPU (from the repository root)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_check.py

It reports generated tokens/s of ``tidekit.generation.run_requests`` on the ``hf`` backend for
64 prompts x 64 new tokens (greedy): SmolLM2-135M (packaged weights) and a randomly initialised
Qwen2-architecture model of about 0.5B parameters (Qwen2.5-0.5B's shape; random weights give
meaningless text but the same compute, and need no download; they rarely emit end-of-sequence,
so nearly every request decodes all 64 tokens). Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def _throughput(model: str, prompts: int, new_tokens: int, batch: int) -> tuple[float, int]:
    from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
    from tidekit.data import Message
    from tidekit.generation import run_requests

    backend = load_backend(BackendConfig(model=model, device="cuda", batch_size=batch))
    params = GenerationParams(max_new_tokens=new_tokens)
    requests = [ChatRequest(id=str(i), params=params, messages=[
        Message(role="system", content="You are a supportive, trauma-informed listener."),
        Message(role="user", content=f"I keep reliving what happened, day {i}. I can't sleep and I feel alone.")])
        for i in range(prompts)]
    run_requests(backend, requests[:2], progress=False)  # warm-up
    import torch

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    results = run_requests(backend, requests, progress=False)
    torch.cuda.synchronize()
    tokens = sum(r.completion_tokens or 0 for r in results)
    backend.close()
    return tokens / (time.perf_counter() - t0), tokens


def _random_qwen2(folder: Path) -> int:
    """A Qwen2.5-0.5B-shaped model with random weights and the SmolLM2 tokenizer (ChatML)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from tidekit.backends import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("smollm2-135m"))
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
    except ImportError:
        print("torch is not installed; nothing to check")
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device on this machine: the GPU check did not run (this is not a failure). "
              "Run it on a machine with an NVIDIA GPU; docs/benchmarks.md says which figures are still to be measured.")
        return 0
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    tps, tokens = _throughput("smollm2-135m", 64, 64, 64)
    print(f"smollm2-135m: {tps:,.0f} tok/s ({tokens} tokens, batch 64)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "qwen2-0.5b-random"
        n = _random_qwen2(folder)
        tps, tokens = _throughput(str(folder), 64, 64, 64)
        print(f"random Qwen2 ({n / 1e9:.2f}B params): {tps:,.0f} tok/s ({tokens} tokens, batch 64)")
    print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 1024**3:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
