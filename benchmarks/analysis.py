"""Benchmark: analyse 100,000 simulated ratings (no ordinal model); wall and CPU seconds.

Run: .venv/bin/python benchmarks/analysis.py [--raters 500 --per-rater 200] [--no-append]
Appends its figures, the command and the machine to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name

SECTION = "## Analysis (`benchmarks/analysis.py`)"
INTRO = ("Command: `.venv/bin/python benchmarks/analysis.py`. CPU counts the main process and its forked "
         "workers.\n\n| measurement | figure | machine |\n|---|---|---|")


def main() -> None:
    from tidekit.analysis import AnalysisConfig, analyze, synthetic_ratings

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raters", type=int, default=500)
    ap.add_argument("--per-rater", type=int, default=200)
    ap.add_argument("--conversations", type=int, default=500)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    df = synthetic_ratings(raters=a.raters, ratings_per_rater=a.per_rater, conversations=a.conversations,
                           scenarios=20, age_style=0.3, attention_checks=0, seed=3)
    cfg = AnalysisConfig(ordinal="none", workers=a.workers)
    t0, c0 = time.perf_counter(), time.process_time()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = analyze(cfg, ratings=df)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    load = os.getloadavg()[0]
    line = (f"| analyze, {len(df):,} ratings ({a.raters} raters x {a.per_rater}, {res.summary.items} items, "
            f"5 attributes, no ordinal model) | wall {wall:.1f} s, CPU {cpu:.1f} s, {len(res.tests)} tests | "
            f"load average {load:.1f}; {cpu_name()} |")
    print(line)
    print({k: round(v, 2) for k, v in res.timings.items()})
    if not a.no_append:
        append_to_section(SECTION, line, intro=INTRO)  # a row of the section's table


if __name__ == "__main__":
    main()
