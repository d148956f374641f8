"""Measurements of the machine itself, shared by the benchmarks (run from the repository root).

Benchmarks report ratios against what this machine can do, measured in the same process, since
the machines are shared and noisy.
"""

from __future__ import annotations

import statistics
import time


def matmul_gflops(dtype_name: str, device: str = "cpu", size: int = 2048, reps: int = 6) -> float:
    """Median GFLOP/s of a ``size``^3 matrix product in ``dtype_name`` (e.g. 'bfloat16') on ``device``."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    for _ in range(2):  # warm-up: allocator, kernels, packing
        a @ b
    times = []
    for _ in range(reps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(times) / 1e9


def memory_read_gbps(gib: float = 1.0, reps: int = 5) -> float:
    """Median GB/s of reading a ``gib``-GiB fp32 tensor (a sum) on CPU: larger than the caches,
    so it measures main memory, which streaming a model's weights at every decode step meets."""
    import torch

    x = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32)
    x.sum()  # warm-up: page faults, threads
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - t0)
    return x.numel() * 4 / statistics.median(times) / 1e9
