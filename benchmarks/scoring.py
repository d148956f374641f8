"""Benchmark scoring throughput against sentence-transformers' raw encode, in one process.

Scores 10,000 candidate/reference pairs with cosine (all-MiniLM-L6-v2) + ROUGE-L + distinct-1/2
through tidekit's metrics, and encodes the same distinct texts with ``SentenceTransformer.encode``
alone (same batch size, same normalisation). The acceptance bar: tidekit's texts/s >= 85% of the
raw encode's. Runs alternate (raw, tidekit, raw, tidekit...) and the best of each is compared,
because these machines are shared and noisy. Texts are recombined sentences of the bundled sample
(real client and reference sentences; each pair different; 3-6 sentences, like a reply).

Run it with::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scoring.py              # ~5 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scoring.py --pairs 2000 --repeats 1   # quick

On a machine shared with other work, two torch threads can spin against each other and run
several times slower than one; ``--threads 1`` measures both paths single-threaded.

It appends its figures, the command and the machine to docs/benchmarks.md (## Scoring).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import random
import re
import sys
import time

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name

SECTION = "## Scoring (benchmarks/scoring.py)"


def make_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` pairs of reply-like texts recombined from the sample's real sentences."""
    from tidekit.data import load_dataset, sample_path

    ds = load_dataset(sample_path())
    sentences: list[str] = []
    for conv in ds.conversations:
        for text in (conv.client_text, conv.reference or ""):
            sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]
    rng = random.Random(seed)

    def reply() -> str:
        return " ".join(rng.sample(sentences, rng.randint(3, 6)))

    return [reply() for _ in range(n)], [reply() for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=2, help="Alternating runs of each; the best counts.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both paths [default: torch's]; 1 is faster on a busy machine.")
    parser.add_argument("--no-append", action="store_true", help="Do not write docs/benchmarks.md.")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tidekit.metrics import build_metric
    from tidekit.metrics._embedding import load_encoder

    cands, refs = make_pairs(args.pairs)
    texts = list(dict.fromkeys([*cands, *refs]))
    words = sum(len(t.split()) for t in texts) / len(texts)
    encoder = load_encoder("minilm-l6")
    encoder.encode(texts[:256], batch_size=args.batch_size)  # warm-up: allocator, kernels, tokenizer
    cosine = build_metric("cosine", batch_size=args.batch_size)
    rouge, distinct = build_metric("rouge_l"), build_metric("distinct")

    raw_times, ours_times, parts = [], [], {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        encoder.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, normalize_embeddings=True)
        raw_times.append(time.perf_counter() - t0)
        print(f"raw encode: {raw_times[-1]:.1f} s", flush=True)

        t0 = time.perf_counter()
        scores = cosine(cands, refs)
        t1 = time.perf_counter()
        scores |= rouge(cands, refs)
        t2 = time.perf_counter()
        scores |= distinct(cands, refs)
        t3 = time.perf_counter()
        ours_times.append(t3 - t0)
        parts = {"cosine": t1 - t0, "rouge_l": t2 - t1, "distinct": t3 - t2}
        print(f"tidekit: {ours_times[-1]:.1f} s", flush=True)
        assert len(scores["cosine"]) == len(scores["rouge_l"]) == len(scores["distinct_1"]) == args.pairs

    raw, ours = min(raw_times), min(ours_times)
    raw_tps, ours_tps = len(texts) / raw, len(texts) / ours
    ratio = ours_tps / raw_tps
    lines = [
        f"pairs: {args.pairs}, distinct texts: {len(texts)} (mean {words:.0f} words), batch {args.batch_size}, "
        f"torch threads {torch.get_num_threads()}",
        f"raw sentence-transformers encode: {raw:.1f} s = {raw_tps:.0f} texts/s (runs: "
        + ", ".join(f"{t:.1f}" for t in raw_times) + ")",
        f"tidekit cosine + ROUGE-L + distinct: {ours:.1f} s = {ours_tps:.0f} texts/s = "
        f"{args.pairs / ours:.0f} pairs/s (runs: " + ", ".join(f"{t:.1f}" for t in ours_times) + "; last run: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()) + ")",
        f"ratio tidekit / raw encode: {ratio:.1%} (bar: >= 85%) -> {'PASS' if ratio >= 0.85 else 'FAIL'}",
    ]
    print("\n".join(lines))
    if not args.no_append:
        _append(lines, " ".join(["HF_HUB_OFFLINE=1", ".venv/bin/python", "benchmarks/scoring.py", *sys.argv[1:]]))
    return 0 if ratio >= 0.85 else 1


def _append(lines: list[str], command: str) -> None:
    machine = f"{cpu_name()}, Python {platform.python_version()}"
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry = f"\n### {when}\n\n`{command}` on {machine}\n\n" + "".join(f"- {line}\n" for line in lines)
    append_to_section(SECTION, entry, intro="Scoring 10,000 pairs (cosine + ROUGE-L + distinct) vs "
                                            "sentence-transformers' raw encode of the same texts, measured in the "
                                            "same run.")


if __name__ == "__main__":
    raise SystemExit(main())
