"""Benchmark: the costs the tests used to assert with wall-clock limits, measured here instead.

- ``import tidekit`` (with ``tidekit.data`` and ``tidekit.errors``) in a fresh interpreter, against
  a bare ``python -c pass`` in the same run; the goal is under 0.5 s (docs/developing.md).
- Sampling 500 personas (``sample_personas``, spec resolution included); the goal is under 5 s.
- A no-op rerun of a finished tiny study (``tidekit run`` with every stage skipped), against its
  first run; the goal is under 30 s. Needs the real SmolLM2, so it takes minutes; skip it with
  ``--no-study``.

Run: .venv/bin/python benchmarks/startup.py [--repeats 5] [--no-study] [--no-append]
Appends its figures, the command and the machine to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name, print_rows

SECTION = "## Start-up and no-op costs (`benchmarks/startup.py`)"
INTRO = ("What tests used to assert with wall-clock limits on a shared machine (flaky there), measured here. "
         "Command: `.venv/bin/python benchmarks/startup.py`.")

# the tiny study of tests/study/test_run.py
STUDY = {
    "name": "startup benchmark (simulated ratings)", "seed": 0,
    "dataset": {"source": "sample", "split": {"ratios": [0.4, 0.2, 0.4], "seed": 0}},
    "systems": [{"model": "smollm2-135m", "conditions": ["zero_shot"], "backend": {"batch_size": 4}}],
    "generation": {"split": "test", "limit": 6, "params": {"max_new_tokens": 12}},
    "scoring": {"metrics": [{"name": "cosine"}, {"name": "rouge_l"}, {"name": "distinct"}],
                "bootstrap": {"n_resamples": 200}},
    "rating": {"simulate": True, "simulated_raters": 24,
               "study": {"ratings_per_item": 4, "items_per_rater": 6, "attention_checks": 1}},
    "analysis": {"by": ["age_group", "gender"]},
}


def _python_seconds(code: str) -> float:
    """Seconds the code itself takes inside a fresh interpreter (as it reports)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def _process_seconds(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-study", action="store_true", help="Skip the study rerun (minutes of real model work).")
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    rows: list[tuple[str, str]] = []

    timed_import = ("import time; t=time.perf_counter(); import tidekit, tidekit.data, tidekit.errors; "
                    "print(time.perf_counter()-t)")
    imports = [_python_seconds(timed_import) for _ in range(a.repeats)]
    bare = [_process_seconds([sys.executable, "-c", "pass"]) for _ in range(a.repeats)]
    whole = [_process_seconds([sys.executable, "-c", "import tidekit, tidekit.data, tidekit.errors"])
             for _ in range(a.repeats)]
    rows += [("import tidekit (in-process, best / median)",
              f"{min(imports):.3f} / {statistics.median(imports):.3f} s (goal < 0.5 s)"),
             ("python -c 'import tidekit' vs python -c pass (median)",
              f"{statistics.median(whole):.3f} vs {statistics.median(bare):.3f} s "
              f"({statistics.median(whole) / statistics.median(bare):.1f}x)")]

    timed_personas = ("import time; from tidekit.personas import PersonaConfig, sample_personas; "
                      "t=time.perf_counter(); p=sample_personas(PersonaConfig(n=500, seed=1)); "
                      "print(time.perf_counter()-t, len(p))")
    personas = [_python_seconds(timed_personas) for _ in range(max(2, a.repeats // 2))]
    rows.append(("sample 500 personas (spec resolution included; best / median)",
                 f"{min(personas):.2f} / {statistics.median(personas):.2f} s (goal < 5 s)"))

    if not a.no_study:
        import yaml

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "study.yaml"
            path.write_text(yaml.safe_dump({**STUDY, "out": str(Path(tmp) / "run")}))
            cmd = [sys.executable, "-m", "tidekit", "run", str(path), "--json", "--no-progress"]
            first = _process_seconds(cmd)
            reruns = [_process_seconds(cmd) for _ in range(3)]
            statuses = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            assert {s["status"] for s in statuses["stages"]} == {"skipped"}, statuses
        rows.append(("tidekit run, tiny study: first run vs no-op rerun (median of 3)",
                     f"{first:.1f} s vs {statistics.median(reruns):.1f} s "
                     f"({statistics.median(reruns) / first:.0%} of the first run; goal < 30 s)"))

    load = os.getloadavg()[0]
    rows.append(("machine", f"{cpu_name()}; load average {load:.1f} at the end"))
    print_rows(rows)
    if not a.no_append:
        table = "| what | figure |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        append_to_section(SECTION, f"\n{time.strftime('%Y-%m-%d')}, `{' '.join(['benchmarks/startup.py', *sys.argv[1:]])}`:\n\n{table}",
                          intro=INTRO)


if __name__ == "__main__":
    main()
