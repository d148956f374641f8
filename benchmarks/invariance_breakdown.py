"""Where the batch-invariant mode's cost goes: prefill and decode steps apart, both modes, one process.

Run (from the repository root; 1-2 minutes on 2 cores, idle)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/invariance_breakdown.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/invariance_breakdown.py --no-shared-prefix
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/invariance_breakdown.py --profile

SmolLM2-135M on the hf backend's lean decoder, bf16 where the CPU has it: 64 chat prompts
(the chat template adds the same 24 leading tokens to each; 56 tokens on average), a prefill
and then ``--steps`` greedy steps, three alternating rounds a mode, best of each. It prints
prefill seconds and decode milliseconds a step for ``reproducible: true`` (the batch-invariant
layout) and ``false`` (the batch-dependent one), and their ratios. ``--no-shared-prefix`` makes
the batch-dependent path prefill every prompt whole, as the batch-invariant one always does, so
the two differ in their attention and cache layout only. ``--profile`` adds torch profiler
tables (self CPU time per op) for one run of each. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

WORDS = ["flood", "crash", "fire", "storm", "attack", "war", "quake", "fall"]


def _run(lean: Any, prompts: list[list[int]], steps: int, share: bool) -> tuple[float, float]:
    import torch

    lean.allocate(len(prompts), max(map(len, prompts)) + steps + 1)
    positions = torch.tensor([len(p) for p in prompts])
    t0 = time.perf_counter()
    logits = lean.prefill(prompts, share_prefix=share)
    t1 = time.perf_counter()
    for _ in range(steps):
        logits = lean.step(logits.argmax(-1), positions)
        positions = positions + 1
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=64, help="greedy decode steps after the prefill [64]")
    parser.add_argument("--no-shared-prefix", action="store_true",
                        help="the batch-dependent path prefills every prompt whole (no shared-prefix pass)")
    parser.add_argument("--profile", action="store_true", help="print torch profiler tables as well")
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from tidekit.backends import BackendConfig, load_backend
    from tidekit.data import Message

    texts = [f"I keep remembering the day of the {w}; my nights are short and my days are long, {i} times a week."
             for i, w in enumerate(WORDS * 8)]
    backends = {r: load_backend(BackendConfig.model_validate({"kind": "hf", "model": "smollm2-135m",
                                                              "reproducible": r})) for r in (True, False)}
    prompts = [backends[True].encode([Message(role="user", content=t)]) for t in texts]
    share = {True: True, False: not args.no_shared_prefix}  # the invariant path never shares a prefix pass
    print(f"threads {torch.get_num_threads()}; {len(prompts)} prompts, mean {sum(map(len, prompts)) / len(prompts):.1f} "
          f"tokens; {args.steps} steps; batch-dependent shared prefix: {share[False]}")
    best: dict[bool, tuple[float, float]] = {}
    with torch.inference_mode():
        for r in (True, False):
            _run(backends[r].lean, prompts, 4, share[r])  # warm-up
        for _ in range(3):
            for r in (True, False):
                pre, dec = _run(backends[r].lean, prompts, args.steps, share[r])
                old = best.get(r, (pre, dec))
                best[r] = (min(old[0], pre), min(old[1], dec))
        for r in (True, False):
            pre, dec = best[r]
            print(f"reproducible={r}: prefill {pre:.3f} s, decode {dec:.3f} s ({dec / args.steps * 1000:.1f} ms a step)")
        print(f"batch-invariant speed / batch-dependent: prefill {best[False][0] / best[True][0]:.3f}, "
              f"decode steps {best[False][1] / best[True][1]:.3f}")
        if args.profile:
            for r in (True, False):
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    _run(backends[r].lean, prompts, args.steps // 2, share[r])
                print(f"=== reproducible={r}")
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))


if __name__ == "__main__":
    main()
