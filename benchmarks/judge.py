"""Benchmark the empathy judge with and without constrained decoding, on the same items, in one run.

Judges the same replies with SmolLM2-135M on the hf backend three ways, through the generation
engine with no cache (every call computed), one request per item and no retries:

- ``free``: no schema, no token probabilities (the judge before constrained decoding);
- ``constrained``: decoded under the verdict's JSON schema (llguidance), no probabilities;
- ``default``: constrained and with the 5 most likely tokens per position (the default judge,
  which also yields the probability-weighted scores).

Runs alternate (free, constrained, default, then the reverse...) and the best of each is
compared, since these machines are shared and noisy. The acceptance bar: constrained (and
default) judge time <= 1.3x the free judge's. It also prints each mode's parse-failure rate.

Then the grammar libraries are compared on what the decode loop asks of them: building the
verdict grammar for SmolLM2's tokenizer, and filling the allowed-token bitmask of 16 rows per
step along a real verdict. Each library that is installed is measured (``pip install xgrammar
lm-format-enforcer`` to include those two; tidekit itself needs only llguidance).

Run it with::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/judge.py              # ~10 min on 2 busy cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/judge.py --items 8 --repeats 1 --no-append

It appends its figures, the command and the machine to docs/benchmarks.md (## Judge).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from typing import Any

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name, markdown_table, print_rows

SECTION = "## Judge: constrained decoding (`benchmarks/judge.py`)"
MODES = {"free": {"structured": False, "top_logprobs": 0},
         "constrained": {"structured": True, "top_logprobs": 0},
         "default": {"structured": True, "top_logprobs": 5}}


def judge_items_once(backend: Any, items: list[Any], mode: str, max_new_tokens: int) -> dict[str, float]:
    from tidekit.backends import ChatRequest, ChatResult
    from tidekit.generation import run_requests
    from tidekit.metrics import JudgeOptions, judge_items

    tokens: list[int] = []

    def runner(requests: list[ChatRequest]) -> list[ChatResult]:
        results = run_requests(backend, requests, cache=None, progress=False)
        tokens.extend(r.completion_tokens or 0 for r in results)
        return results

    options = JudgeOptions(max_retries=0, max_new_tokens=max_new_tokens, **MODES[mode])
    t0 = time.perf_counter()
    verdicts = judge_items(items, runner, "smollm2-135m", options)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "failure_rate": sum(v.scores is None for v in verdicts) / len(verdicts),
            "mean_tokens": statistics.mean(tokens) if tokens else 0.0}


def verdict_tokens(tokenizer: Any) -> list[int]:
    text = '{"emotion_recognition": 4, "distress_normalization": 3, "supportive_reflection": 5, "overall": 4}'
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def bench_llguidance(tokenizer: Any, vocab: int, schema: dict[str, Any], ids: list[int], rows: int) -> dict[str, float]:
    import torch

    from tidekit.backends._constrain import GrammarConstraints

    t0 = time.perf_counter()
    grammars = GrammarConstraints(tokenizer, vocab, {int(tokenizer.eos_token_id)})
    constraints = [grammars.for_schema(schema) for _ in range(rows)]
    setup = time.perf_counter() - t0
    bitmask = torch.zeros((rows, (vocab + 31) // 32), dtype=torch.int32)
    fill = 0.0
    for token in ids:
        t0 = time.perf_counter()
        for i, c in enumerate(constraints):
            c.fill(bitmask, i)
        fill += time.perf_counter() - t0
        for c in constraints:
            assert c.accept(token)
    return {"setup_s": setup, "fill_ms_per_step": 1000 * fill / len(ids)}


def bench_xgrammar(tokenizer: Any, vocab: int, schema: dict[str, Any], ids: list[int], rows: int) -> dict[str, float]:
    import xgrammar as xgr

    t0 = time.perf_counter()
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
    compiled = xgr.GrammarCompiler(info, max_threads=1).compile_json_schema(json.dumps(schema),
                                                                             any_whitespace=False)
    matchers = [xgr.GrammarMatcher(compiled) for _ in range(rows)]
    setup = time.perf_counter() - t0
    bitmask = xgr.allocate_token_bitmask(rows, vocab)
    fill = 0.0
    for token in ids:
        t0 = time.perf_counter()
        for i, m in enumerate(matchers):
            m.fill_next_token_bitmask(bitmask, i)
        fill += time.perf_counter() - t0
        for m in matchers:
            assert m.accept_token(token)
    return {"setup_s": setup, "fill_ms_per_step": 1000 * fill / len(ids)}


def bench_lmfe(tokenizer: Any, vocab: int, schema: dict[str, Any], ids: list[int], rows: int) -> dict[str, float]:
    from lmformatenforcer import JsonSchemaParser, TokenEnforcer
    from lmformatenforcer.integrations.transformers import build_token_enforcer_tokenizer_data

    t0 = time.perf_counter()
    data = build_token_enforcer_tokenizer_data(tokenizer)
    enforcers = [TokenEnforcer(data, JsonSchemaParser(schema)) for _ in range(rows)]
    setup = time.perf_counter() - t0
    fill = 0.0
    for n in range(len(ids)):
        t0 = time.perf_counter()
        for e in enforcers:
            e.get_allowed_tokens(ids[:n])
        fill += time.perf_counter() - t0
    return {"setup_s": setup, "fill_ms_per_step": 1000 * fill / len(ids)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=16, help="Replies judged per run (bundled sample references).")
    parser.add_argument("--repeats", type=int, default=2, help="Alternating runs of each mode; the best counts.")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="As the judge's default.")
    parser.add_argument("--rows", type=int, default=16, help="Rows per step in the library comparison.")
    parser.add_argument("--no-append", action="store_true", help="Print only; do not touch docs/benchmarks.md.")
    args = parser.parse_args()

    import importlib.util

    from tidekit.backends import BackendConfig, load_backend
    from tidekit.data import load_dataset, sample_path
    from tidekit.metrics import JudgeItem, verdict_schema

    convs = [c for c in load_dataset(sample_path()).conversations if c.reference][: args.items]
    items = [JudgeItem(id=c.id, client_text=c.client_text, response=c.reference or "") for c in convs]
    backend = load_backend(BackendConfig(model="smollm2-135m", batch_size=args.items))
    judge_items_once(backend, items[:2], "default", 16)  # warm-up: threads, grammar tokenizer, allocator
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    order = list(MODES)
    for r in range(args.repeats):
        for mode in (order if r % 2 == 0 else order[::-1]):
            runs[mode].append(judge_items_once(backend, items, mode, args.max_new_tokens))
            print(f"  {mode}: {runs[mode][-1]}", file=sys.stderr)
    best = {m: min(rs, key=lambda x: x["wall_s"]) for m, rs in runs.items()}

    tokenizer = backend.tokenizer  # type: ignore[attr-defined]
    vocab = int(backend.model.config.vocab_size)  # type: ignore[attr-defined]
    backend.close()
    schema, ids = verdict_schema(), verdict_tokens(tokenizer)
    libraries: dict[str, dict[str, float] | str] = {}
    for name, module, fn in (("llguidance", "llguidance", bench_llguidance), ("xgrammar", "xgrammar", bench_xgrammar),
                             ("lm-format-enforcer", "lmformatenforcer", bench_lmfe)):
        if importlib.util.find_spec(module) is None:
            libraries[name] = "not installed"
            continue
        try:
            libraries[name] = fn(tokenizer, vocab, schema, ids, args.rows)
        except ImportError as exc:  # installed, but does not load with this stack
            libraries[name] = f"does not load here: {str(exc).splitlines()[0][:90]}"

    rows = [(f"{m} judge, {args.items} items (best of {args.repeats})",
             f"{b['wall_s']:.1f} s; parse failures {b['failure_rate']:.0%}; {b['mean_tokens']:.1f} tokens/reply")
            for m, b in best.items()]
    rows += [("constrained / free", f"{best['constrained']['wall_s'] / best['free']['wall_s']:.2f}x (bar: <= 1.3x)"),
             ("default (constrained + top-5 logprobs) / free",
              f"{best['default']['wall_s'] / best['free']['wall_s']:.2f}x (bar: <= 1.3x)")]
    for name, res in libraries.items():
        rows.append((f"{name}: grammar setup; mask fill, {args.rows} rows x 1 step",
                     res if isinstance(res, str) else f"{res['setup_s']:.2f} s; {res['fill_ms_per_step']:.3f} ms"))
    print_rows(rows)
    if args.no_append:
        return 0
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/judge.py " + " ".join(sys.argv[1:])
    text = (f"\n### {dt.date.today().isoformat()}: `{command.strip()}`\n\nMachine: {cpu_name()}, "
            f"shared with other work (load average {os.getloadavg()[0]:.1f} at the end).\n\n"
            + markdown_table(rows))
    append_to_section(SECTION, text, intro=__doc__.split("\n\n")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
