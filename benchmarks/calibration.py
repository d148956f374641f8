"""Benchmark: calibration of the system/condition findings by simulation.

For each setting (reply SD 0, 0.3, 0.5) it simulates ``--studies`` null studies of the design
in ``tidekit.analysis._calibration.StudyDesign`` (40 conversations x 2 systems, 30 raters each
rating a random 24 of the 80 replies, rater SD 0.8, conversation SD 0.5, residual SD 1, 1-7
scale), analyses each as ``tidekit analyze`` does (ordinal model included) and reports the
family-wise false-positive rate of the findings with a Wilson interval (nominal 0.05; the target
band is [0.025, 0.075]), beside the rejection rate of every other test in the same run. Then the
power at planted differences of 0.5 and 0.8 points.

With ``--ppi`` it calibrates the prediction-powered estimates instead (docs/analysis.md): for a
quickstart-shaped design (3 systems, 10 of 40 scored conversations rated, 20 raters per reply,
10 replies per rater) and a paper-shaped one (17 systems, 200 of 1,000 rated, 3 raters per
reply, 20 replies per rater), with rater SD 0.8, conversation SD 0.5, reply SD 0.5 and residual
SD 1 on the 1-7 scale, a predictor correlated 0.3, 0.6 or 0.9 with the true reply quality (and
one with a system-dependent bias of 0 to 1 predictor SD), null and planted (0.5 points, first to
last system) studies: the coverage of the 95% intervals of every system mean and paired
difference, PPI and human-only, the CI width ratio (human-only / PPI), the effective sample size
ratio and lambda. Target band for coverage: [0.93, 0.97]. Then the paper shape with a stratified
rated sample (20 strata of unequal size, rated evenly, as ``rating.study.strata`` draws it, the
small strata higher in quality), analysed with its recorded design and once as if it were a
simple random sample; and the 0.9 predictor with reliable raters (residual SD 0.4, rater SD 0.3).

Run: .venv/bin/python benchmarks/calibration.py [--studies 200] [--power-studies 100] [--no-append]
     .venv/bin/python benchmarks/calibration.py --ppi [--studies 200] [--no-append]
Appends its figures, the command and the machine to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name

SECTION = "## Calibration of system comparisons (`benchmarks/calibration.py`)"
INTRO = ("Command: `.venv/bin/python benchmarks/calibration.py`. Null studies: no true system difference, so "
         "the share of studies in which any system/condition finding has adjusted p < 0.05 is the family-wise "
         "false-positive rate (target band [0.025, 0.075]); the other columns are the rejection rates of the "
         "sensitivity and descriptive tests in the same simulated studies. Power rows: a planted difference.")


PPI_SECTION = "## Calibration of prediction-powered estimates (`benchmarks/calibration.py --ppi`)"
PPI_INTRO = ("Command: `.venv/bin/python benchmarks/calibration.py --ppi`. Each row: simulated studies of one "
             "design and predictor, analysed as `tidekit analyze` does (rater-centred reply values, PPI++ with "
             "tuned lambda, t intervals). Coverage: share of 95% intervals (every system mean, every paired "
             "difference, all studies) that cover the true value; target band [0.93, 0.97]. Width ratio: "
             "human-only CI width / PPI CI width (median over targets, mean over studies). ESS: the effective "
             "sample size ratio of the system means. Reject: share of studies in which the last-minus-first "
             "difference has p < 0.05 (false-positive rate when null, power when planted).")
SHAPES = {"quickstart": dict(conversations=40, rated=10, systems=3, ratings_per_reply=20, ratings_per_rater=10),
          "paper": dict(conversations=1000, rated=200, systems=17, ratings_per_reply=3, ratings_per_rater=20)}
PREDICTORS = [dict(correlation=0.3), dict(correlation=0.6), dict(correlation=0.9),
              dict(correlation=0.6, bias=1.0)]


def ppi_main(a: argparse.Namespace) -> None:
    """The prediction-powered calibration table (module docstring)."""
    from tidekit.analysis._calibration import PPIDesign, calibrate_ppi

    lines = ["", f"Run of {a.studies} studies per paper-shaped row, {a.quickstart_studies} per quickstart-shaped "
             f"row; {cpu_name()}; load average {os.getloadavg()[0]:.1f}.", "",
             "| design | studies | predictor | effect | coverage means PPI / human | coverage differences PPI / human "
             "| width ratio means / differences | bound (corr. with reply mean) | ESS means | lambda | "
             "reject PPI / human | coverage in band | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    i = 0
    for shape, dims in SHAPES.items():
        for predictor in PREDICTORS:
            for effect in (0.0, 0.5):
                design = PPIDesign(**dims, **predictor, effect=effect)
                studies = a.quickstart_studies if shape == "quickstart" else a.studies
                r = calibrate_ppi(design, studies=studies, seed=a.seed + 100 + i)
                i += 1
                band = all(0.93 <= c <= 0.97 for c in (r.coverage_means, r.coverage_differences))
                what = f"rho {design.correlation}" + (f", bias {design.bias}" if design.bias else "")
                lines.append(
                    f"| {shape} | {studies} | {what} | {effect} | {r.coverage_means:.3f} / {r.human_coverage_means:.3f}"
                    f" | {r.coverage_differences:.3f} / "
                    f"{r.human_coverage_differences:.3f} | {r.width_ratio_means:.2f} / {r.width_ratio_differences:.2f}"
                    f" | {r.width_bound:.2f} ({r.correlation:.2f}) | {r.ess_ratio:.2f} | {r.lam:.2f} | "
                    f"{r.rejected_first_last:.3f} / "
                    f"{r.human_rejected_first_last:.3f} | {'yes' if band else 'NO'} | {r.wall_s:.0f} |")
                print(lines[-1], flush=True)
    lines += _ppi_design_rows(a, PPIDesign, calibrate_ppi)
    if not a.no_append:
        append_to_section(PPI_SECTION, "\n".join(lines), intro=PPI_INTRO)


def _ppi_design_rows(a: argparse.Namespace, PPIDesign: type, calibrate_ppi: Callable[..., Any]) -> list[str]:
    """Rows beyond the two shapes: a stratified sample (20 strata of unequal size, rated evenly, as
    'rating.study.strata: scenario_id' draws it) analysed with its recorded design and, to show
    what the record is for, as if it were a simple random sample; and the 0.9 predictor with
    reliable raters (less noise), where the width ratio can reach its bound."""
    from tidekit.analysis import AnalysisConfig

    ignore = AnalysisConfig(by=[], ppi={"predictor": "predictor", "sampling": "simple_random"})
    rows = [("paper, 20 strata", dict(strata=20), dict(correlation=0.6), 0.0, None),
            ("paper, 20 strata", dict(strata=20), dict(correlation=0.6), 0.5, None),
            ("paper, 20 strata", dict(strata=20), dict(correlation=0.9), 0.0, None),
            ("paper, 20 strata, design ignored", dict(strata=20), dict(correlation=0.6), 0.0, ignore),
            ("paper, reliable raters", dict(residual_sd=0.4, rater_sd=0.3), dict(correlation=0.9), 0.0, None),
            ("paper, reliable raters", dict(residual_sd=0.4, rater_sd=0.3), dict(correlation=0.9), 0.5, None)]
    out = []
    for i, (label, extra, predictor, effect, config) in enumerate(rows):
        design = PPIDesign(**SHAPES["paper"], **extra, **predictor, effect=effect)
        r = calibrate_ppi(design, studies=a.studies, seed=a.seed + 300 + i, config=config)
        band = all(0.93 <= c <= 0.97 for c in (r.coverage_means, r.coverage_differences))
        out.append(f"| {label} | {a.studies} | rho {design.correlation} | {effect} | {r.coverage_means:.3f} / "
                   f"{r.human_coverage_means:.3f} | {r.coverage_differences:.3f} / {r.human_coverage_differences:.3f} | "
                   f"{r.width_ratio_means:.2f} / {r.width_ratio_differences:.2f} | {r.width_bound:.2f} "
                   f"({r.correlation:.2f}) | {r.ess_ratio:.2f} | {r.lam:.2f} | {r.rejected_first_last:.3f} / "
                   f"{r.human_rejected_first_last:.3f} | {'yes' if band else 'NO'} | {r.wall_s:.0f} |")
        print(out[-1], flush=True)
    return out


def main() -> None:
    from tidekit.analysis import AnalysisConfig
    from tidekit.analysis._calibration import StudyDesign, calibrate

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--power-studies", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--ppi", action="store_true", help="calibrate the prediction-powered estimates instead")
    ap.add_argument("--quickstart-studies", type=int, default=1000,
                    help="--ppi: studies per row of the (cheap) quickstart-shaped design")
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    if a.ppi:
        ppi_main(a)
        return
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
