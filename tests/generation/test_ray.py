"""``tidekit generate --ray local``: replicas on Ray actors give the plain run's greedy outputs,
each request exactly once, also after a SIGKILL of the driver and a rerun.

Real parts: a private Ray instance on loopback, two actors each loading SmolLM2-135M, the real
CLI in a subprocess. Skipped (with the reason) only where Ray is not installed; `make test`
installs it (tidekit[ray] is part of tidekit[all]).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from generation.conftest import cli_command, finished_results, make_dataset, native_dtype
from tidekit.data import read_generations

pytest.importorskip("ray", reason="Ray is not installed (pip install 'tidekit[ray]')")


@pytest.mark.slow
def test_ray_local_matches_a_plain_run_and_resumes_after_sigkill(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n=12)
    common = ["--data", data, "--model", "smollm2-135m", "--max-new-tokens", "10", "--dtype", native_dtype(),
              "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    # the plain run: 2 threads, batches of 12; the replicas: 1 thread each, batches of 2 (in bf16
    # the same outputs only with the batch-invariant mode, issue #30)
    subprocess.run(cli_command("generate", *common, "--batch-size", "12", "--out", tmp_path / "plain"), check=True,
                   env=env, capture_output=True, timeout=600)
    common += ["--batch-size", "2"]
    out = tmp_path / "ray"
    ray_args = ["--ray", "local", "--replicas", "2"]
    # killed once at least two results are committed; the Ray instance runs in the driver's session,
    # so the whole process group goes down with it
    proc = subprocess.Popen(cli_command("generate", *common, *ray_args, "--out", out), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        while finished_results(out / "cache.sqlite") < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    partial = finished_results(out / "cache.sqlite")
    assert 2 <= partial < 12 and not (out / "generations.jsonl").exists()
    rerun = subprocess.run(cli_command("generate", *common, *ray_args, "--out", out), env=env, capture_output=True,
                           text=True, timeout=600, start_new_session=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{partial} from cache" in rerun.stdout
    plain, resumed = read_generations(tmp_path / "plain"), read_generations(out)
    assert len(resumed) == 12 and len({r.conversation_id for r in resumed}) == 12
    assert [(r.conversation_id, r.output) for r in resumed] == [(r.conversation_id, r.output) for r in plain]
    assert all(r.output for r in resumed)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["executor"]["kind"] == "ray" and manifest["extra"]["executor"]["replicas_used"] == 2
    assert manifest["counts"]["cached"] == partial


def test_ray_missing_or_bad_address_is_a_clear_error(tmp_path: Path) -> None:
    from tidekit.backends import BackendConfig
    from tidekit.errors import BackendError
    from tidekit.generation import ExecutorConfig, RayBackend

    with pytest.raises(BackendError, match="ray start --head"):
        RayBackend(BackendConfig(), ExecutorConfig(kind="ray", address="127.0.0.1:1"))
