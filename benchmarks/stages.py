"""Model-calling stages against the engine, at the same batch size, in one run.

The generation engine's own figure (``run_requests`` on short prompts, 64 new tokens each, at
the stage's batch size) is what a stage could reach; a stage's figure is what it gets: the judge
rating the quickstart's number of replies (the bundled sample's references) with the default
judge options, and the quickstart's dataset build (its ``dataset.build`` section: every round of
teacher turns, regenerations included, through the engine with the build's own cache). All run
on the same loaded SmolLM2-135M. Two rates are reported for each: generated tokens per second of
wall time (the quickstart issue's measure), and served tokens per second, prompt tokens plus
generated ones, since a stage whose prompts are ten times its replies (the judge reads a rubric,
a message and a reply to write a 36-token verdict) spends most of its time in prefill, which the
generated-token rate does not see. The judge runs in
three modes, in turn: the defaults, without the lean forward's shared-prefix prefill, and without
its jump-forward over grammar-forced tokens, so the effect of computing the rubric once per batch
and of feeding forced tokens several per pass is measured beside the rest. Prompt tokens per
request are printed too: prefill of the rubric dominates the judge's work.

Run it with::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/stages.py                 # 10-25 min on 2 idle cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/stages.py --items 16 --no-build --no-append

It appends its figures, the command and the machine to docs/benchmarks.md (## Stages).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _docs import append_to_section, cpu_name, markdown_table, print_rows

SECTION = "## Stages against the engine (`benchmarks/stages.py`)"
ROOT = Path(__file__).resolve().parents[1]


def engine_rate(backend: Any, batch: int, new_tokens: int) -> dict[str, float]:
    """The engine on short prompts: ``batch`` requests of ``new_tokens`` tokens, greedy, no cache."""
    from tidekit.backends import ChatRequest, GenerationParams
    from tidekit.data import Message, load_dataset, sample_path
    from tidekit.generation import run_requests

    texts = [c.client_text for c in load_dataset(sample_path()).conversations]
    texts = (texts * (batch // len(texts) + 1))[:batch]  # the sample may hold fewer than ``batch``
    params = GenerationParams(max_new_tokens=new_tokens, temperature=0.0, seed=0)
    requests = [ChatRequest(id=str(i), messages=[Message(role="user", content=t)], params=params)
                for i, t in enumerate(texts)]
    t0 = time.perf_counter()
    results = run_requests(backend, requests, cache=None, progress=False)
    wall = time.perf_counter() - t0
    tokens = sum(r.completion_tokens or 0 for r in results)
    prompt = sum(r.prompt_tokens or 0 for r in results)
    return {"tok_s": tokens / wall, "served_s": (prompt + tokens) / wall, "wall_s": wall,
            "prompt_tokens": prompt / len(results), "new_tokens": tokens / len(results)}


def build_rate(backend: Any) -> dict[str, float]:
    """The quickstart's dataset build with ``backend`` as its teacher, into a fresh folder (no cache
    hits): model time and tokens from the build's own manifest, and the stage's wall time."""
    from tidekit.builder import build_dataset
    from tidekit.study import load_study

    study = load_study(ROOT / "configs" / "quickstart.yaml")
    assert study.dataset.build is not None
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_dataset(study.dataset.build, out=Path(tmp) / "build", backend=backend, progress=False)
        wall = time.perf_counter() - t0
        manifest = json.loads((Path(tmp) / "build" / "manifest.json").read_text())
    extra, counts = manifest["extra"], manifest["counts"]
    prompt, new = extra["prompt_tokens"], extra["completion_tokens"]
    return {"tok_s": new / wall, "served_s": (prompt + new) / wall, "wall_s": wall, "model_s": extra["model_s"],
            "requests": counts["requests"], "conversations": counts["conversations"],
            "prompt_tokens": prompt / counts["requests"], "new_tokens": new / counts["requests"],
            "batch": study.dataset.build.teacher.batch_size, "first_round": counts["planned_conversations"]}


# judge modes: (share_prefix, jump_forward) and their row labels
MODES = {"default": ((True, True), "shared-prefix prefill, jump-forward (default)"),
         "whole": ((False, True), "whole-prompt prefill"),
         "no_jump": ((True, False), "shared-prefix prefill, a step per forced token")}


def judge_rate(backend: Any, items: list[Any], share_prefix: bool, jump_forward: bool = True) -> dict[str, float]:
    """The judge stage's work on ``items``: every verdict through the engine, as ``tidekit score`` asks."""
    from tidekit.backends import ChatRequest, ChatResult
    from tidekit.generation import run_requests
    from tidekit.metrics import JudgeOptions, judge_items

    backend.config = backend.config.model_copy(update={"share_prefix": share_prefix, "jump_forward": jump_forward})
    seen: list[ChatResult] = []

    def runner(requests: list[ChatRequest]) -> list[ChatResult]:
        results = run_requests(backend, requests, cache=None, progress=False)
        seen.extend(results)
        return results

    t0 = time.perf_counter()
    verdicts = judge_items(items, runner, "smollm2-135m", JudgeOptions())
    wall = time.perf_counter() - t0
    tokens = sum(r.completion_tokens or 0 for r in seen)
    prompt = sum(r.prompt_tokens or 0 for r in seen)
    return {"tok_s": tokens / wall, "served_s": (prompt + tokens) / wall, "wall_s": wall, "requests": len(seen),
            "prompt_tokens": prompt / len(seen), "new_tokens": tokens / len(seen),
            "failures": sum(v.scores is None for v in verdicts),
            "verdicts": [tuple(sorted((v.scores or {}).items())) for v in verdicts]}  # type: ignore[dict-item]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=30, help="Replies judged (the quickstart judges 30).")
    parser.add_argument("--repeats", type=int, default=2, help="Alternating runs of each judge mode; the best counts.")
    parser.add_argument("--no-build", action="store_true", help="Leave out the dataset build (the longest part).")
    parser.add_argument("--no-append", action="store_true", help="Print only; do not touch docs/benchmarks.md.")
    args = parser.parse_args()

    from tidekit.backends import BackendConfig, load_backend
    from tidekit.data import load_dataset, sample_path
    from tidekit.metrics import JudgeItem

    convs = [c for c in load_dataset(sample_path()).conversations if c.reference][: args.items]
    items = [JudgeItem(id=c.id, client_text=c.client_text, response=c.reference or "") for c in convs]
    backend = load_backend(BackendConfig(model="smollm2-135m", batch_size=max(64, args.items)))
    engine_rate(backend, 4, 8)  # warm-up: threads, allocator
    engine = engine_rate(backend, args.items, 64)
    build = build_engine = None
    if not args.no_build:
        build = build_rate(backend)
        print(f"  build: {build['wall_s']:.1f} s", file=sys.stderr)
        build_engine = engine_rate(backend, int(build["first_round"]), 64)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for r in range(args.repeats):
        for mode in (list(MODES) if r % 2 == 0 else list(MODES)[::-1]):
            runs[mode].append(judge_rate(backend, items, *MODES[mode][0]))
            print(f"  {mode}: {runs[mode][-1]['wall_s']:.1f} s", file=sys.stderr)
    backend.close()
    best = {mode: min(rs, key=lambda x: x["wall_s"]) for mode, rs in runs.items()}

    def same(mode: str) -> int:
        return sum(a == b for a, b in zip(best["default"]["verdicts"], best[mode]["verdicts"], strict=True))

    rows = [(f"engine, batch {args.items}, short prompts x 64 new tokens",
             f"{engine['tok_s']:.1f} tok/s ({engine['wall_s']:.1f} s; mean prompt {engine['prompt_tokens']:.0f} tokens)")]
    for mode, (_, label) in MODES.items():
        b = best[mode]
        rows.append((f"judge, {args.items} items, {label}, best of {args.repeats}",
                     f"{b['tok_s']:.1f} tok/s ({b['wall_s']:.1f} s, {b['requests']} requests, mean prompt "
                     f"{b['prompt_tokens']:.0f} tokens, {b['failures']} unreadable)"))
    d = best["default"]
    rows += [("judge, tokens per request (prompt / generated)",
              f"{d['prompt_tokens']:.0f} / {d['new_tokens']:.0f}; engine benchmark "
              f"{engine['prompt_tokens']:.0f} / {engine['new_tokens']:.0f}"),
             ("judge / engine, generated tok/s (default)",
              f"{d['tok_s'] / engine['tok_s']:.0%} (bar: >= 60%)"),
             ("judge / engine, served (prompt + generated) tok/s (default)",
              f"{d['served_s'] / engine['served_s']:.0%} ({d['served_s']:.0f} vs {engine['served_s']:.0f} tok/s)"),
             ("judge / engine (whole prompts)", f"{best['whole']['tok_s'] / engine['tok_s']:.0%}"),
             ("shared-prefix speed-up of the judge", f"{best['whole']['wall_s'] / best['default']['wall_s']:.2f}x"),
             ("jump-forward speed-up of the judge", f"{best['no_jump']['wall_s'] / best['default']['wall_s']:.2f}x"),
             ("verdicts equal with and without sharing", f"{same('whole')} of {len(items)}"),
             ("verdicts equal with and without jump-forward", f"{same('no_jump')} of {len(items)}")]
    if build is not None and build_engine is not None:
        rows += [(f"engine, batch {build['first_round']:.0f}, short prompts x 64 new tokens",
                  f"{build_engine['tok_s']:.1f} tok/s ({build_engine['wall_s']:.1f} s)"),
                 (f"build, quickstart dataset ({build['conversations']:.0f} conversations, teacher batch "
                  f"{build['batch']:.0f})",
                  f"{build['tok_s']:.1f} tok/s ({build['wall_s']:.1f} s, of which model calls {build['model_s']:.1f} s; "
                  f"{build['requests']:.0f} requests)"),
                 ("build, tokens per request (prompt / generated)",
                  f"{build['prompt_tokens']:.0f} / {build['new_tokens']:.0f}; engine benchmark "
                  f"{build_engine['prompt_tokens']:.0f} / {build_engine['new_tokens']:.0f}"),
                 ("build / engine, generated tok/s", f"{build['tok_s'] / build_engine['tok_s']:.0%} (bar: >= 60%)"),
                 ("build / engine, served (prompt + generated) tok/s",
                  f"{build['served_s'] / build_engine['served_s']:.0%} ({build['served_s']:.0f} vs "
                  f"{build_engine['served_s']:.0f} tok/s)")]
    print_rows(rows)
    if args.no_append:
        return 0
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/stages.py " + " ".join(sys.argv[1:])
    text = (f"\n### {dt.date.today().isoformat()}: `{command.strip()}`\n\nMachine: {cpu_name()} "
            f"(load average {os.getloadavg()[0]:.1f} at the end).\n\n" + markdown_table(rows))
    append_to_section(SECTION, text, intro=__doc__.split("\n\n")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
