#!/usr/bin/env bash
# Release check: tidekit installs into a fresh virtual environment of another Python and imports.
#
#   scripts/check_python.sh [--light] [PYTHON]     PYTHON defaults to python3.12 (3.11-3.13 supported)
#
# Full (default): `pip install .[all]` into a new venv (no constraints file: it checks that the
# ranges in pyproject.toml resolve on that Python, as a lab image would install them), then imports
# tidekit, every stage and the heavy libraries it loads lazily, and runs `tidekit --help`.
# --light: `pip install .` (the core, no torch), the same imports of the core, and a
# `pip install --dry-run .[all]` that resolves every extra without downloading it; for machines
# where a multi-GB torch download is too slow. Run before each release (docs/developing.md);
# it is not part of the test suite because the full install downloads gigabytes.
set -euo pipefail
cd "$(dirname "$0")/.."
light=0
if [[ "${1:-}" == "--light" ]]; then light=1; shift; fi
python="${1:-python3.12}"
"$python" -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), sys.version' || {
  echo "error: $python is not Python 3.11-3.13 (give its path as the argument)" >&2; exit 2; }
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
start=$SECONDS
if (( light )); then
  "$venv/bin/pip" install -q .
  "$venv/bin/pip" install -q --dry-run --ignore-installed ".[all]" --report "$venv/all-report.json"
  "$venv/bin/python" - "$venv/all-report.json" <<'PY'
import json, sys
picked = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
print(f"[all] resolves: {len(picked)} packages, e.g. torch {picked.get('torch')}, "
      f"transformers {picked.get('transformers')}, trl {picked.get('trl')}")
PY
  modules="tidekit tidekit.cli tidekit.data tidekit.personas tidekit.study tidekit.serve tidekit.errors"
else
  "$venv/bin/pip" install -q ".[all]"
  modules="tidekit tidekit.cli tidekit.data tidekit.personas tidekit.study tidekit.serve tidekit.errors \
tidekit.backends tidekit.generation tidekit.finetuning tidekit.metrics tidekit.analysis tidekit.rating \
tidekit.reporting torch transformers trl peft sentence_transformers datasets huggingface_hub"
fi
"$venv/bin/python" -c "
import importlib, sys
for name in '$modules'.split():
    importlib.import_module(name)
import tidekit
print(f'import ok on Python {sys.version.split()[0]}: tidekit {tidekit.__version__}')
"
"$venv/bin/tidekit" --help >/dev/null
"$venv/bin/pip" check
echo "Python $version check passed ($([[ $light == 1 ]] && echo light || echo full); $((SECONDS - start)) s of installs and checks)"
