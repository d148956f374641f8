"""Benchmark: calibration of the system/condition findings by simulation.

For each setting (reply SD 0, 0.3, 0.5) it simulates ``--studies`` null studies of the design
in ``tidekit.analysis._calibration.StudyDesign`` (40 conversations x 2 systems, 30 raters each
rating a random 24 of the 80 replies, rater SD 0.8, conversation SD 0.5, residual SD 1, 1-7
scale), analyses each as ``tidekit analyze`` does (ordinal model included) and reports the
family-wise false-positive rate of the findings with a Wilson interval (nominal 0.05; the target
band is [0.025, 0.075]), beside the rejection rate of every other test in the same run. Then the
power at planted differences of 0.5 and 0.8 points.

Run: .venv/bin/python benchmarks/calibration.py [--studies 200] [--power-studies 100] [--no-append]
Appends its figures, the command and the machine to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name

SECTION = "## Calibration of system comparisons (`benchmarks/calibration.py`)"
INTRO = ("Command: `.venv/bin/python benchmarks/calibration.py`. Null studies: no true system difference, so "
         "the share of studies in which any system/condition finding has adjusted p < 0.05 is the family-wise "
         "false-positive rate (target band [0.025, 0.075]); the other columns are the rejection rates of the "
         "sensitivity and descriptive tests in the same simulated studies. Power rows: a planted difference.")


def main() -> None:
    from tidekit.analysis import AnalysisConfig
    from tidekit.analysis._calibration import StudyDesign, calibrate

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--power-studies", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    config = AnalysisConfig(by=[], bootstrap=0, rating_level_tests=False, rater_paired_descriptive=True)
    tests = ["system/wilcoxon-conversation (sensitivity)", "system/ordinal (sensitivity)",
             "system/wilcoxon-rater (descriptive)"]
    lines = ["", f"Run of {a.studies} null studies per setting and {a.power_studies} per effect; "
             f"{cpu_name()}; load average {os.getloadavg()[0]:.1f}.", "",
             "| setting | findings flag a difference (LMM, primary) | conversation-paired Wilcoxon | "
             "ordinal (clustered) | rater-paired Wilcoxon (descriptive) | seconds |", "|---|---|---|---|---|---|"]
    for i, reply_sd in enumerate((0.0, 0.3, 0.5)):
        r = calibrate(StudyDesign(reply_sd=reply_sd), studies=a.studies, seed=a.seed + i, config=config)
        ok = "in band" if 0.025 <= r.rate <= 0.075 else "OUT OF BAND"
        others = " | ".join(f"{r.by_test.get(t, float('nan')):.3f}" for t in tests)
        lines.append(f"| null, reply SD {reply_sd} | {r.rate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] ({ok}) | "
                     f"{others} | {r.wall_s:.0f} |")
        print(lines[-1], flush=True)
    for j, effect in enumerate((0.5, 0.8)):
        r = calibrate(StudyDesign(reply_sd=0.5, effect=effect), studies=a.power_studies, seed=a.seed + 10 + j,
                      config=config)
        others = " | ".join(f"{r.by_test.get(t, float('nan')):.3f}" for t in tests)
        lines.append(f"| power, effect {effect}, reply SD 0.5 | {r.rate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | "
                     f"{others} | {r.wall_s:.0f} |")
        print(lines[-1], flush=True)
    if not a.no_append:
        append_to_section(SECTION, "\n".join(lines), intro=INTRO)


if __name__ == "__main__":
    main()
