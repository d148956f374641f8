"""scripts/install.py: pip's source settings handed to uv, and a real uv resolving the lock with them."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tidekit_install_script", ROOT / "scripts" / "install.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LISTING = """\
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/srv/old-wheels'
global.index-url='https://mirror.example/simple'
install.index-url='https://install.example/simple'
install.no-index='false'
"""


def test_environment_beats_install_section_beats_global() -> None:
    settings = _script().pip_settings(LISTING)
    assert settings["find-links"] == "/opt/wheels"  # PIP_FIND_LINKS over global.find-links
    assert settings["index-url"] == "https://install.example/simple"  # [install] over [global]
    assert settings["extra-index-url"] == "file:///opt/pypi/simple file:///opt/pypi-more/simple"


def test_uv_gets_every_source_and_pips_index_rule() -> None:
    script = _script()
    args = script.uv_arguments(script.pip_settings(LISTING))
    assert args == ["--index-url", "https://install.example/simple",
                    "--extra-index-url", "file:///opt/pypi/simple",
                    "--extra-index-url", "file:///opt/pypi-more/simple",
                    "--find-links", "/opt/wheels",
                    "--constraint", "/etc/xdg/pip/constraints.txt",
                    "--index-strategy", "unsafe-best-match"]
    assert "--no-index" not in args  # "false" is not a request
    assert "--no-index" in script.uv_arguments({"no-index": "1"})


def test_no_configuration_means_pypi_and_pips_rule_only() -> None:
    script = _script()
    assert script.uv_arguments(script.pip_settings("")) == ["--index-strategy", "unsafe-best-match"]
    # lines that are not settings (pip prints nothing else, but be safe) are skipped
    assert script.pip_settings("warning: something\nnot a setting\n") == {}


@pytest.mark.skipif(not (Path(sys.executable).parent / "uv").exists(), reason="uv is not in this venv (make setup installs it)")
def test_real_uv_resolves_the_lock_from_pips_sources() -> None:
    """The venv the Makefile built: uv, given pip's sources, finds every locked version (dry run)."""
    env = {**os.environ, "TIDEKIT_INSTALLER": "uv"}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "install.py"), "--dry-run", "-c",
                           str(ROOT / "constraints.txt"), "-e", f"{ROOT}[ml]"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "uv pip install" in done.stderr and "--index-strategy unsafe-best-match" in done.stderr
