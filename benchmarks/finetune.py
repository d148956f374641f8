"""Fine-tuning throughput: training tokens/s of a LoRA run on SmolLM2-135M, packing off vs on;
on CUDA, a one-minute LoRA run.

Run (from the repository root)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune.py                 # CPU, ~5-10 min on 2 busy cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune.py --threads 1     # on a busy shared machine
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune.py --gpu-seconds 60   # CUDA: one-minute run

What it measures: ``tidekit.finetuning.finetune`` on the bundled sample (80 training
conversations, tidekit's default responder prompt, so examples are ~400-550 tokens) with LoRA
r=16 on q/k/v/o, batch 2, max_length 1024 in both runs (unpacked rows are padded to the longest
example of their batch; a packed row holds about two examples), precision chosen by the
hardware. tokens/s counts real (non-padding) input tokens
over the time spent inside optimizer steps (from metrics.jsonl: evaluation, checkpoint saves
and the first ``--warmup`` steps are left out). Both runs see the same examples; packing wins
only what padding would have wasted plus per-step overheads.

For context, the same process measures the bf16 (or fp32) matmul rate (2048^3, before and
after), and reports a model-FLOPs utilisation assuming ~4 x parameters FLOPs per trained token
for LoRA (forward 2N, backward through the frozen weights 2N; no weight gradients for them).
With ``--gpu-seconds S`` on a CUDA machine it trains with packing, batch 16, max_length 1024
until S seconds have passed and reports tokens/s and peak GPU memory; without CUDA it says the
GPU figure was not measured. Appends a section to docs/benchmarks.md unless ``--no-append``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name, markdown_table, print_rows
from _machine import matmul_gflops

ROOT = Path(__file__).resolve().parents[1]


def config(out: Path, *, packing: bool, steps: int, batch: int, max_length: int, device: str) -> Any:
    from tidekit.data import sample_path
    from tidekit.finetuning import FinetuneConfig

    return FinetuneConfig.model_validate({
        "model": "smollm2-135m", "out": str(out), "seed": 0, "device": device, "progress": False,
        "data": {"path": str(sample_path())},
        "train": {"max_steps": steps, "batch_size": batch, "grad_accum": 1, "max_length": max_length,
                  "packing": packing, "learning_rate": 2e-4, "logging_steps": 1},
        "eval": {"steps": None, "at_start": False, "max_examples": 1},
        "checkpoints": {"steps": 10**6},
    })


def steady_rate(out: Path, warmup: int) -> tuple[float, float, float]:
    """tokens/s, s/step and real tokens/step over the logged steps after ``warmup``."""
    from tidekit.finetuning import read_metrics

    rows = [r for r in read_metrics(out) if r["kind"] == "train" and r["step"] > warmup and "step_s" in r]
    seconds = sum(r["step_s"] for r in rows)  # logging_steps=1: each row is one step
    tokens = sum(r["tokens_per_s"] * r["step_s"] for r in rows)
    return tokens / seconds, seconds / len(rows), tokens / len(rows)


class StopAfter:
    """A TrainerCallback factory: stop training once ``seconds`` of wall time have passed."""

    def __new__(cls, seconds: float) -> Any:
        from transformers import TrainerCallback

        class _Stop(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                self.t0 = time.perf_counter()

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if time.perf_counter() - self.t0 >= seconds:
                    control.should_training_stop = True

        return _Stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per CPU run")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the rate")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--gpu-seconds", type=float, default=60.0, help="length of the CUDA run")
    parser.add_argument("--no-append", action="store_true", help="do not append to docs/benchmarks.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from tidekit.finetuning import finetune

    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    rows: list[tuple[str, str]] = [("torch threads", str(torch.get_num_threads()))]
    with tempfile.TemporaryDirectory() as tmp:
        bf16 = matmul_gflops("bfloat16")
        fp32 = matmul_gflops("float32")
        results = {}
        for packing in (False, True):
            out = Path(tmp) / f"packing-{packing}"
            result = finetune(config(out, packing=packing, steps=args.steps, batch=args.batch,
                                     max_length=1024, device="cpu"))
            results[packing] = (result, *steady_rate(out, args.warmup))
        bf16_after = matmul_gflops("bfloat16")
        precision = results[False][0].precision
        peak = (bf16 + bf16_after) / 2 if precision == "bf16" else fp32
        from tidekit.backends import MODELS

        n_params = MODELS["smollm2-135m"].params_b * 1e9
        rows.append(("bf16 / fp32 matmul 2048^3", f"{bf16:.0f} (after: {bf16_after:.0f}) / {fp32:.0f} GFLOP/s"))
        for packing, (result, tps, step_s, per_step) in results.items():
            label = f"CPU LoRA, packing {'on' if packing else 'off'}, batch {args.batch} x max_length 1024, {precision}"
            rows.append((label, f"{tps:,.1f} tokens/s ({step_s:.2f} s/step, {per_step:.0f} real tokens/step, "
                                f"steps {args.warmup + 1}-{result.steps}); MFU ~{100 * 4 * n_params * tps / (peak * 1e9):.1f}%"))
        rows.append(("packing on / off", f"{results[True][1] / results[False][1]:.2f}x tokens/s"))

        if torch.cuda.is_available():
            out = Path(tmp) / "gpu"
            torch.cuda.reset_peak_memory_stats()
            gpu_bf16 = matmul_gflops("bfloat16", "cuda")
            result = finetune(config(out, packing=True, steps=10**6, batch=16, max_length=1024, device="cuda"),
                              callbacks=[StopAfter(args.gpu_seconds)])
            tps, step_s, per_step = steady_rate(out, args.warmup)
            rows.append((f"GPU ({torch.cuda.get_device_name(0)}) LoRA, packing, batch 16 x 1024, "
                         f"{result.precision}, {args.gpu_seconds:.0f} s",
                         f"{tps:,.0f} tokens/s ({result.steps} steps, {step_s * 1000:.0f} ms/step, "
                         f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB; bf16 matmul {gpu_bf16:,.0f} "
                         "GFLOP/s)"))
        else:
            rows.append(("GPU one-minute LoRA run", "not measured: no CUDA device on this machine "
                                                    f"(run this script with --gpu-seconds {args.gpu_seconds:.0f} on one)"))
    rows.append(("load average (1 min) start / end", f"{load_start:.1f} / {os.getloadavg()[0]:.1f}"))

    print_rows(rows)
    if not args.no_append:
        section = (f"\n### Fine-tuning throughput ({dt.date.today()})\n\n"
                   f"Command: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune.py {' '.join(sys.argv[1:])}`"
                   f"\n\nMachine: {cpu_name()}, Python {platform.python_version()}, torch {torch.__version__}.\n\n"
                   f"{markdown_table(rows)}")
        append_to_section("## Fine-tuning (`benchmarks/finetune.py`)", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
