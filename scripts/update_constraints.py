"""Regenerate constraints.txt (the lock) from the project's virtual environment.

Run after changing dependencies and passing `make test`:

    .venv/bin/python scripts/update_constraints.py

It writes `pip freeze --exclude-editable` minus tidekit itself, as `name==version` lines:
direct references (`name @ file:///...whl`) become `name==version` from the installed metadata,
and local version labels are dropped (`torch==2.13.0+cpu` -> `torch==2.13.0`) so the lock names
releases any index has; pip still matches a local build such as 2.13.0+cpu against them.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

HEADER = """\
# The lock: every package of the environment tidekit's test suite last passed in (Python 3.11).
# `make run` and `make test` install with it (pip install -c constraints.txt -e .[all,dev]);
# pyproject.toml holds the ranges. Regenerate with: .venv/bin/python scripts/update_constraints.py
"""


def main() -> int:
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    pins: dict[str, str] = {}
    for line in frozen:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[=@ ]", line, maxsplit=1)[0].strip()
        if name.lower().replace("_", "-") == "tidekit":
            continue
        version = line.split("==", 1)[1] if "==" in line else importlib.metadata.version(name)
        pins[name] = version.split("+", 1)[0]
    text = HEADER + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items(), key=lambda kv: kv[0].lower()))
    path = Path(__file__).resolve().parents[1] / "constraints.txt"
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({len(pins)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
