"""`make run` on a fresh machine installs the system package the quickstart needs (wordnet-base).

The quickstart's score stage computes METEOR, whose WordNet synonyms come from Debian's
wordnet-base; `make test` installed it and `make run` did not, so `make run` on a fresh machine
stopped after two minutes of work (issue #32). These tests run the real Makefile with fake
`dpkg`, `id`, `apt-get` and `tidekit` first on PATH: a fresh root machine, then a fresh machine
without root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_machine(tmp_path: Path, *, uid: int) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    scripts = {
        "dpkg": "exit 1",  # nothing installed
        "id": f"echo {uid}",
        "apt-get": f'echo "apt-get $*" >> {log}',
        "tidekit": f'echo "tidekit $*" >> {log}',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "TIDEKIT_WORDNET"}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    return env, log


def _make_run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    # -o setup: the venv is taken as set up; BIN: the fake tidekit; WORDNET_DIR: a folder without WordNet
    return subprocess.run(
        [make, "-s", "-o", "setup", "run", f"BIN={tmp_path / 'fakebin'}", f"WORDNET_DIR={tmp_path / 'no-wordnet'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_make_run_installs_wordnet_base_before_the_quickstart_as_root(tmp_path: Path) -> None:
    env, log = _fake_machine(tmp_path, uid=0)
    proc = _make_run(tmp_path, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    install = [i for i, c in enumerate(calls) if c.startswith("apt-get") and "install" in c and "wordnet-base" in c]
    quickstart = [i for i, c in enumerate(calls) if c == "tidekit run configs/quickstart.yaml"]
    assert install and quickstart and install[0] < quickstart[0], calls


def test_make_run_without_root_stops_first_and_says_what_to_install(tmp_path: Path) -> None:
    env, log = _fake_machine(tmp_path, uid=1000)
    proc = _make_run(tmp_path, env)
    assert proc.returncode != 0
    assert "wordnet-base" in proc.stdout + proc.stderr and "TIDEKIT_WORDNET" in proc.stderr
    assert not log.exists() or "tidekit" not in log.read_text()  # nothing ran for two minutes first


def test_make_run_with_tidekit_wordnet_set_installs_nothing(tmp_path: Path) -> None:
    env, log = _fake_machine(tmp_path, uid=0)
    env["TIDEKIT_WORDNET"] = str(tmp_path / "my-wordnet")
    proc = _make_run(tmp_path, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert log.read_text().splitlines() == ["tidekit run configs/quickstart.yaml"]


def _make(tmp_path: Path, env: dict[str, str], target: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    return subprocess.run([make, "-s", target], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_make_test_sysdeps_installs_all_as_root_and_goes_on_without_root(tmp_path: Path) -> None:
    env, log = _fake_machine(tmp_path, uid=0)
    assert _make(tmp_path, env, "sysdeps").returncode == 0
    install = [c for c in log.read_text().splitlines() if " install " in c]
    assert install and all(p in install[0] for p in ("chromium", "chromium-driver", "postgresql", "wordnet-base"))
    (tmp_path / "user").mkdir()
    env, log = _fake_machine(tmp_path / "user", uid=1000)
    proc = _make(tmp_path, env, "sysdeps")
    assert proc.returncode == 0 and "tests that need them will skip" in proc.stdout
    assert not log.exists()


def test_a_failing_apt_fails_both_commands(tmp_path: Path) -> None:
    env, _ = _fake_machine(tmp_path, uid=0)
    (tmp_path / "fakebin" / "apt-get").write_text("#!/bin/sh\nexit 100\n")
    assert _make(tmp_path, env, "sysdeps").returncode != 0
    assert _make_run(tmp_path, env).returncode != 0


def _make_variable(name: str) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    proc = subprocess.run([make, "-s", "-f", "Makefile", "-f", "-", f"print-{name}"], cwd=ROOT, text=True,
                          input="print-%:\n\t@echo $($*)\n", capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_make_run_installs_every_system_package_the_quickstarts_metrics_need(tmp_path: Path) -> None:
    """If the quickstart gains a metric that needs a Debian package, `make run` must install it."""
    from tidekit import load_study
    from tidekit.errors import MissingDependencyError
    from tidekit.metrics import build_metric

    # metric -> the Debian package its missing-dependency error names (checked just below)
    needs = {"meteor": "wordnet-base"}
    with pytest.raises(MissingDependencyError, match="wordnet-base"):
        build_metric("meteor", wordnet_dir=str(tmp_path / "nowhere"))
    study = load_study(ROOT / "configs" / "quickstart.yaml")
    wanted = {needs[m.name] for m in study.scoring.metrics if m.name in needs}
    assert wanted == {"wordnet-base"}  # the quickstart scores METEOR
    assert wanted <= set(_make_variable("SYSDEPS_RUN").split())
    assert set(_make_variable("SYSDEPS_RUN").split()) <= set(_make_variable("SYSDEPS").split())  # make test too
